"""Registers the decisions part on the release-decision runtime (filled in by issue 4)."""

from __future__ import annotations

from shared.service import Runtime


async def setup(runtime: Runtime) -> None:
    """Nothing registered yet."""
