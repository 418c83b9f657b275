"""Registers ``svc.scanner.search`` on the scanner's runtime. No projection of its own: it
reads the registry, scans and vulndb read models (their trigram indexes: migration 0010)."""

from __future__ import annotations

from contracts.rpc import search as rpc
from services.scanner.search.handlers import SearchHandlers
from shared.service import Runtime

# Concurrent searches per process: each holds up to four pooled connections (one per kind).
SEARCH_CONCURRENCY = 2


async def setup(runtime: Runtime) -> None:
    handlers = SearchHandlers(pool=runtime.pool)
    runtime.rpc.add(rpc.SEARCH, rpc.SearchRequest, handlers.search, concurrency=SEARCH_CONCURRENCY)
