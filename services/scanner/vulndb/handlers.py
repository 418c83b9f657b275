"""``svc.scanner.vulndb_*``: the import commands and the two queries.

An import reads the blob, refuses it as a whole when it cannot be read (nothing is
published), plans against the read model, publishes one ``vulndb.updated`` and answers only
once the projection has applied it and the in-memory matcher holds it (read-your-writes: a
scan started after the answer matches against the new advisories). Imports are serialised
(an asyncio lock in the process, a PostgreSQL advisory lock across replicas) so each plans
against the result of the one before.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncpg
import msgspec

from contracts.events.vulndb import (
    CHANGED_ADVISORIES_MAX,
    CHANGED_PACKAGES_MAX,
    REJECTED_EXAMPLES_MAX,
    ImportCounts,
    PackageRef,
    VulnDbUpdated,
)
from contracts.ids import new_id
from contracts.rpc.scanner_vulndb import (
    IMPORT_TIMEOUT_SECONDS,
    AdvisoryDetail,
    AdvisoryRequest,
    EpssImportRequest,
    EpssScore,
    ImportSummary,
    OsvImportRequest,
    StatusRequest,
    VulnDbStatus,
)
from services.scanner.domain.package_ids import package_id
from services.scanner.vulndb import store
from services.scanner.vulndb.bundle import ImportPlan, plan_import, read_bundle
from services.scanner.vulndb.epss import epss_counts, read_epss
from services.scanner.vulndb.memory import VulnDb
from services.scanner.vulndb.offload import offload
from services.scanner.vulndb.prepared import Prepared, PreparedImports
from shared.blobs import BlobStore
from shared.bus import Bus
from shared.db import advisory_key
from shared.errors import GatehouseError, NotFound, ValidationFailed
from shared.projection import ProjectionRunner
from shared.rpc import CallContext

IMPORT_LOCK = advisory_key("scanner:vulndb:import")
# Share of the callers' import deadline spent waiting for the projection and the matcher.
APPLY_WAIT_SECONDS = IMPORT_TIMEOUT_SECONDS * 0.9


class ImportNotAppliedYet(GatehouseError):
    code, status, title = "vulndb_not_applied_yet", 504, "The import is not applied yet"
    transient = True


class AdvisoryNotFound(NotFound):
    code = "advisory_not_found"


@dataclass
class VulnDbHandlers:
    pool: asyncpg.Pool
    runner: ProjectionRunner
    memory: VulnDb
    blobs: BlobStore
    bus: Bus
    prepared: PreparedImports
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    # ---- commands ---------------------------------------------------------------------------

    async def import_osv(self, request: OsvImportRequest, ctx: CallContext) -> ImportSummary:
        data = await self._blob(request.digest)
        bundle = await offload(read_bundle, data)
        del data
        async with self._serialised() as conn:
            held = await store.held_advisories(conn, bundle.ids)
            plan = await offload(plan_import, bundle, held)
            changed_ids, packages, rematch_all = await _rematch_scope(conn, plan)
            payload = VulnDbUpdated(
                import_id=new_id(),
                source="osv",
                digest=request.digest,
                format=request.format,
                name=request.name,
                counts=plan.counts,
                counts_by_ecosystem=plan.counts_by_ecosystem,
                rejected=list(plan.rejected[:REJECTED_EXAMPLES_MAX]),
                skipped_files=bundle.skipped_files,
                changed_advisory_ids=changed_ids,
                changed_packages=packages,
                rematch_all=rematch_all,
            )
            changed = len(plan.changes)
            # The projection in this process applies the event from this very plan (it
            # checks that the database is still as planned) instead of reading it again;
            # it holds the only reference, so the bundle is freed as soon as it is applied.
            self.prepared.put(payload.import_id, Prepared(bundle, held, plan))
            del bundle, held, plan
            try:
                sequence = await self._publish(payload, ctx)
            finally:
                self.prepared.drop(payload.import_id)
        return _summary(payload, sequence, changed=changed)

    async def import_epss(self, request: EpssImportRequest, ctx: CallContext) -> ImportSummary:
        data = await self._blob(request.digest)
        scores = await offload(read_epss, data)
        async with self._serialised() as conn:
            held = await store.held_epss(conn, [row.cve for row in scores.rows])
            added, updated, unchanged = epss_counts(scores, held)
            payload = VulnDbUpdated(
                import_id=new_id(),
                source="epss",
                digest=request.digest,
                format="csv.gz" if scores.compressed else "csv",
                name=request.name,
                counts=ImportCounts(added=added, updated=updated, unchanged=unchanged),
                epss_as_of=scores.as_of,
                epss_model_version=scores.model_version,
            )
            sequence = await self._publish(payload, ctx)
        return _summary(payload, sequence, changed=0)

    async def _blob(self, digest: str) -> bytes:
        try:
            return await self.blobs.get(digest)
        except NotFound:
            raise ValidationFailed(
                f"no uploaded blob {digest}; store the upload first",
                code="blob_not_found",
                extra={"errors": [{"field": "$.digest", "message": "no such blob"}]},
            ) from None

    @contextlib.asynccontextmanager
    async def _serialised(self) -> AsyncIterator[asyncpg.Connection]:
        async with self._lock, self.pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", IMPORT_LOCK)
            try:
                yield conn
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", IMPORT_LOCK)

    async def _publish(self, payload: VulnDbUpdated, ctx: CallContext) -> int:
        _, sequence = await self.bus.publish(
            payload,
            aggregate=f"vulndb:{payload.source}",
            actor=ctx.actor,
            correlation_id=ctx.request_id or None,
        )
        try:
            async with asyncio.timeout(APPLY_WAIT_SECONDS):
                await self.runner.wait_for(sequence, timeout=APPLY_WAIT_SECONDS)
                await self.memory.wait_for(sequence, timeout=APPLY_WAIT_SECONDS)
        except TimeoutError:
            raise ImportNotAppliedYet(
                f"the import was recorded (stream sequence {sequence}) but is not applied "
                f"within {APPLY_WAIT_SECONDS:g}s; GET /api/v1/vulndb/status shows when it is",
                extra={"stream_sequence": sequence, "import_id": payload.import_id},
            ) from None
        return sequence

    # ---- queries ----------------------------------------------------------------------------

    async def status(self, _request: StatusRequest, _ctx: CallContext) -> VulnDbStatus:
        async with (
            self.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            active, withdrawn, by_ecosystem = await store.advisory_counts(conn)
            return VulnDbStatus(
                advisories=active,
                withdrawn=withdrawn,
                by_ecosystem=by_ecosystem,
                last_import=await store.last_import(conn, "osv"),
                last_epss_import=await store.last_import(conn, "epss"),
                epss=await store.epss_status(conn),
                version=await store.checkpoint(conn),
            )

    async def advisory(self, request: AdvisoryRequest, _ctx: CallContext) -> AdvisoryDetail:
        async with (
            self.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            row = await store.find_advisory(conn, request.id)
            if row is None:
                raise AdvisoryNotFound(f"no advisory or alias {request.id!r}")
            group_id, members, held = await store.group_of(conn, row["id"])
            cves = [m for m in members if m.startswith("CVE-")]
            scores = await store.epss_of(conn, cves)
            packages = await store.package_refs(conn, row["id"])
        return AdvisoryDetail(
            id=row["id"],
            requested=request.id,
            modified=row["modified"],
            withdrawn=row["withdrawn"],
            severity=row["severity"],
            cvss_score=row["cvss_score"],
            severity_source=row["severity_source"],
            severity_vector=row["severity_vector"],
            group_id=group_id,
            aliases=members,
            group_advisories=held,
            packages=packages,
            epss=[EpssScore(cve=c, score=s, percentile=p, as_of=d) for c, s, p, d in scores],
            advisory=msgspec.Raw(row["document"]),
        )


async def _rematch_scope(
    conn: asyncpg.Connection, plan: ImportPlan
) -> tuple[list[str], list[PackageRef], bool]:
    """(changed advisory ids, packages to re-match, re-match everything instead)."""
    changed = sorted(entry.advisory.id for entry in plan.changes)
    if len(changed) > CHANGED_ADVISORIES_MAX:
        return [], [], True
    if not changed:
        return [], [], False
    new_aliases = {alias for entry in plan.changes for alias in entry.advisory.aliases}
    # Packages the changed advisories name now and named before, and those of the advisories
    # whose alias group they join or leave (their findings' group id may change).
    mates = await store.group_mates(conn, [*changed, *new_aliases])
    packages = await store.packages_of(conn, {*changed, *mates, *new_aliases})
    for entry in plan.changes:
        for affected in entry.advisory.affected:
            if affected.package is not None:
                ecosystem, key = package_id(affected.package.ecosystem, affected.package.name)
                packages.add(PackageRef(ecosystem=ecosystem, package=key))
    if len(packages) > CHANGED_PACKAGES_MAX:
        return [], [], True
    return changed, sorted(packages, key=lambda p: (p.ecosystem, p.package)), False


def _summary(payload: VulnDbUpdated, sequence: int, *, changed: int) -> ImportSummary:
    return ImportSummary(
        import_id=payload.import_id,
        sequence=sequence,
        source=payload.source,
        digest=payload.digest,
        format=payload.format,
        name=payload.name,
        counts=payload.counts,
        counts_by_ecosystem=payload.counts_by_ecosystem,
        rejected=payload.rejected,
        skipped_files=payload.skipped_files,
        changed_advisories=changed,
        rematch_all=payload.rematch_all,
        epss_as_of=payload.epss_as_of,
        epss_model_version=payload.epss_model_version,
    )
