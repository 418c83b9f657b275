"""Registers the vulnerability database on the scanner's runtime (filled in with the vulndb
import; until then the scanner holds an empty database)."""

from __future__ import annotations

from shared.service import Runtime


async def setup(runtime: Runtime) -> None:
    """Projection of ``vulndb.updated``, the in-memory matcher, ``svc.scanner.vulndb_*``."""
