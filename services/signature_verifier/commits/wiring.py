"""Registers the commits part on the signature-verifier's runtime."""

from __future__ import annotations

from shared.service import Runtime


async def setup(runtime: Runtime) -> None:
    del runtime
