"""Registers the subscriptions part on the webhook-fanout's runtime."""

from __future__ import annotations

from shared.service import Runtime


async def setup(runtime: Runtime) -> None:
    del runtime
