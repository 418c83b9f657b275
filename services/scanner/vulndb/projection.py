"""``vulndb.updated`` → the vulnerability database tables.

Applying an event reads its blob (the uploaded OSV zip or EPSS file, immutable, by digest)
and applies it with the pure readers the import command used, inside the runner's
transaction, so a replay from sequence 0 rebuilds the identical tables. OSV: advisories
strictly newer than the held copy are written with their package index rows, alias edges
and the regrouped alias groups. EPSS: scores dated the same as or later than the held ones
replace them. A missing blob or a blob that no longer reads is permanent (dead letter); an
unreachable blob store is transient (retried).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from contracts.envelope import Event
from contracts.events.vulndb import VulnDbUpdated
from services.scanner.domain.errors import ScannerError
from services.scanner.vulndb import store
from services.scanner.vulndb.bundle import plan_import, read_bundle
from services.scanner.vulndb.epss import read_epss
from services.scanner.vulndb.offload import offload
from services.scanner.vulndb.prepared import PreparedImports
from services.scanner.vulndb.rows import advisory_row
from shared.blobs import BlobStore
from shared.errors import NotFound, PermanentEventError
from shared.logging import get_logger

log = get_logger(__name__)


@dataclass(eq=False)
class VulnDbProjection:
    blobs: BlobStore
    prepared: PreparedImports = field(default_factory=PreparedImports)
    name: str = store.PROJECTION
    schema: str = store.SCHEMA
    subjects: Sequence[str] | None = ("vulndb.>",)
    tables: Sequence[str] = field(default=store.TABLES)

    async def apply(self, conn: asyncpg.Connection, events: Sequence[Event]) -> None:
        for event in events:
            payload = event.payload
            if not isinstance(payload, VulnDbUpdated):
                continue
            recorded = await store.record_import(
                conn,
                payload,
                sequence=event.sequence,
                occurred_at=event.envelope.occurred_at,
                actor=event.envelope.actor,
            )
            if not recorded:
                log.info("vulndb_import_seen_before", import_id=payload.import_id)
                continue
            try:
                if payload.source == "osv":
                    await self._apply_osv(conn, payload, event.sequence)
                else:
                    await self._apply_epss(conn, payload, event.sequence)
            except ScannerError as exc:
                # The command read this very blob before publishing: a reader that now
                # refuses it is a code change, never a state to retry into.
                raise PermanentEventError(f"{payload.digest} no longer reads: {exc}") from exc

    async def _blob(self, digest: str) -> bytes:
        try:
            return await self.blobs.get(digest)
        except NotFound as exc:
            raise PermanentEventError(f"the blob {digest} is missing") from exc

    async def _apply_osv(
        self, conn: asyncpg.Connection, payload: VulnDbUpdated, sequence: int
    ) -> None:
        prepared = self.prepared.take(payload.import_id)
        if prepared is not None:
            bundle = prepared.bundle
        else:
            bundle = await offload(read_bundle, await self._blob(payload.digest))
        held = await store.held_advisories(conn, bundle.ids)
        if prepared is not None and prepared.held == held:
            plan = prepared.plan
        else:
            plan = await offload(plan_import, bundle, held)
        rows = await offload(lambda: [advisory_row(entry) for entry in plan.changes])
        await store.upsert_advisories(conn, rows, import_id=payload.import_id, sequence=sequence)
        log.info(
            "vulndb_osv_applied",
            import_id=payload.import_id,
            changed=len(rows),
            planned_here=prepared is not None,
        )

    async def _apply_epss(
        self, conn: asyncpg.Connection, payload: VulnDbUpdated, sequence: int
    ) -> None:
        scores = await offload(read_epss, await self._blob(payload.digest))
        await store.upsert_epss(
            conn,
            scores.rows,
            as_of=scores.as_of,
            import_id=payload.import_id,
            sequence=sequence,
        )
        log.info("vulndb_epss_applied", import_id=payload.import_id, rows=len(scores.rows))
