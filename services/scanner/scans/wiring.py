"""Registers scans on the scanner's runtime (filled in with scan ingestion)."""

from __future__ import annotations

from shared.service import Runtime


async def setup(runtime: Runtime) -> None:
    """Projection of ``scan.*`` / ``finding.*``, the scan worker, ``svc.scanner.scan_*``."""
