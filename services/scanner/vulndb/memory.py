"""The in-memory vulnerability database every scan matches against (``runtime.state["vulndb"]``).

It follows the tables, not the events: at start it loads every advisory and EPSS score the
``vulndb`` projection has applied, then ``gc.freeze()``s them (100k advisories are a few
hundred thousand long-lived objects the cyclic collector need never walk again); after
each commit of the projection it reads the rows changed since (each row carries the stream
sequence of the import that last changed it) and upserts them. The index is therefore
exactly the committed read model at ``version``, never an event the database rolled back.

Decoding runs in a worker thread, chunk by chunk; the index itself is only changed on the
event loop's thread, between awaits.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
from collections.abc import Iterable

import asyncpg

from services.scanner.domain.advisory_index import AdvisoryIndex
from services.scanner.domain.osv import Advisory, decode_advisory
from services.scanner.vulndb import store
from services.scanner.vulndb.epss_table import EpssTable
from services.scanner.vulndb.offload import offload, return_free_memory
from shared.logging import get_logger
from shared.projection import ProjectionRunner, is_transient

log = get_logger(__name__)

RETRY_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)
# How long the follower waits for a new checkpoint before looking again (it is woken at once
# when the projection commits; this only bounds a missed wake-up).
POLL_SECONDS = 5.0


def _decode_all(documents: list[bytes]) -> list[Advisory]:
    return [decode_advisory(document) for document in documents]


class VulnDb:
    """See ``services.scanner.vulndb`` for the interface scans rely on."""

    def __init__(self, pool: asyncpg.Pool, runner: ProjectionRunner) -> None:
        self.index = AdvisoryIndex()
        self.epss_as_of: dt.date | None = None
        self.version = 0
        self._pool = pool
        self._runner = runner
        self._epss = EpssTable()
        self._loaded = asyncio.Event()
        self._progress = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # ---- what scans use -------------------------------------------------------------------

    def epss(self, ids: Iterable[str]) -> dict[str, tuple[float, float]]:
        """(score, percentile) of those ``ids`` that have an EPSS score (CVE ids)."""
        return self._epss.get_many(ids)

    @property
    def epss_count(self) -> int:
        return len(self._epss)

    @property
    def loaded(self) -> bool:
        return self._loaded.is_set()

    async def wait_loaded(self) -> None:
        await self._loaded.wait()

    async def wait_for(self, sequence: int, *, timeout: float) -> None:  # noqa: ASYNC109
        """Return once the index holds every import up to stream ``sequence`` (TimeoutError)."""
        async with asyncio.timeout(timeout):
            while self.version < sequence:
                await self._progress.wait()

    # ---- following the read model -----------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._follow(), name="vulndb-memory")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _follow(self) -> None:
        failures = 0
        while True:
            try:
                await self.catch_up()
                if not self._loaded.is_set():
                    gc.collect()
                    gc.freeze()
                    return_free_memory()
                    self._loaded.set()
                    log.info(
                        "vulndb_loaded",
                        advisories=len(self.index),
                        epss=len(self._epss),
                        version=self.version,
                    )
                failures = 0
                with contextlib.suppress(TimeoutError):
                    await self._runner.wait_for(self.version + 1, timeout=POLL_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not is_transient(exc):
                    log.exception("vulndb_follow_failed", error=type(exc).__name__)
                delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
                failures += 1
                await asyncio.sleep(delay)

    async def catch_up(self) -> int:
        """Apply every row committed since ``version``; returns the new version."""
        async with (
            self._pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            # One snapshot: the checkpoint and exactly the rows committed with it.
            reached = await store.checkpoint(conn)
            if reached <= self.version:
                return self.version
            changed = 0
            async for documents in store.documents_since(conn, self.version):
                advisories = await offload(_decode_all, documents)
                self.index.upsert_many(advisories)
                changed += len(advisories)
            scores, newest = await store.epss_since(conn, self.version)
        if scores:
            self._epss = await offload(self._epss.merged, scores)
            if newest is not None and (self.epss_as_of is None or newest > self.epss_as_of):
                self.epss_as_of = newest
        self.version = reached
        reached_event, self._progress = self._progress, asyncio.Event()
        reached_event.set()
        if changed or scores:
            log.info("vulndb_refreshed", advisories=changed, epss=len(scores), version=reached)
            if self._loaded.is_set():
                return_free_memory()  # what the import read and decoded is garbage now
        return reached
