"""``svc.scanner.scan_*`` and the project reads: the scans part's request/reply endpoints.

Commands (submit, cancel, delete) validate against the read model, publish, and answer
only once the scans projection has applied their event (read-your-writes): the scan a
client was just told about is in the very next read. Cancel and delete serialise on the
scan with an advisory lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import dataclass
from typing import TypeVar

import asyncpg

from contracts.envelope import EventPayload
from contracts.events.scans import ScanCancelled, ScanDeleted, ScanQueued
from contracts.ids import new_id
from contracts.rpc.scanner_scans import (
    ComponentPage,
    ComponentsRequest,
    DetectionFindingPage,
    DetectionFindingsRequest,
    FindingPage,
    FindingRef,
    FindingView,
    ScanAccepted,
    ScanCancelRequest,
    ScanDeletedReply,
    ScanDeleteRequest,
    ScanListRequest,
    ScanLogPage,
    ScanLogRequest,
    ScanPage,
    ScanRef,
    ScanSubmitRequest,
    ScanView,
    SnapshotPage,
    SnapshotRequest,
    VulnerabilitiesRequest,
)
from services.scanner.scans import queries
from services.scanner.scans.ingest import vet_upload
from services.scanner.scans.lifecycle import check_cancellable, check_deletable
from services.scanner.scans.queries import CursorKey
from shared.blobs import BlobStore
from shared.commands import advisory_locked, command_once, publish_visible
from shared.errors import (
    Conflict,
    NotFound,
    PayloadTooLarge,
    ValidationFailed,
)
from shared.pagination import InvalidCursor, decode_cursor, encode_cursor
from shared.projection import ProjectionRunner
from shared.rpc import CallContext
from shared.service import Runtime

T = TypeVar("T")


class ScanNotFound(NotFound):
    code, title = "scan_not_found", "No such scan"


class FindingNotFound(NotFound):
    code, title = "finding_not_found", "No such finding"


class ScanNotSucceeded(Conflict):
    code, title = "scan_not_succeeded", "The scan is not a snapshot"


class UploadTooLarge(PayloadTooLarge):
    code, title = "sbom_too_large", "The SBOM is too large"


class SourceMissing(ValidationFailed):
    code, title = "source_missing", "The upload is not stored"


@dataclass
class ScanHandlers:
    runtime: Runtime
    runner: ProjectionRunner
    blobs: BlobStore

    @property
    def pool(self) -> asyncpg.Pool:
        return self.runtime.pool

    # ---- commands ---------------------------------------------------------------------------
    async def submit(self, request: ScanSubmitRequest, ctx: CallContext) -> ScanAccepted:
        return await command_once(
            ctx,
            bus=self.runtime.bus,
            runner=self.runner,
            settings=self.runtime.settings,
            first=lambda: self._submit(request, ctx),
            again=lambda applied: self._accepted(applied.aggregate_id),
        )

    async def _accepted(self, scan_id: str) -> ScanAccepted:
        """What submitting answered, for a re-run that finds the scan an earlier attempt
        queued (it may have run since: the answer still says what was accepted)."""
        found = await self._scan(scan_id, None)
        return ScanAccepted(scan_id=found.id, status="queued", format=found.format)

    async def _submit(self, request: ScanSubmitRequest, ctx: CallContext) -> ScanAccepted:
        return await queue_scan(
            self.runtime, self.runner, self.blobs, request, ctx=ctx, scan_id=new_id()
        )

    async def cancel(self, request: ScanCancelRequest, ctx: CallContext) -> ScanView:
        async with self._locked(request.scan_id):
            found = await self._scan(request.scan_id, request.only_project)
            check_cancellable(found.status, found.id)
            await self._emit(
                ScanCancelled(scan_id=found.id, project_id=found.project_id, reason=request.reason),
                scan_id=found.id,
                ctx=ctx,
            )
        after = await self._scan(request.scan_id, request.only_project)
        if after.status != "cancelled":
            # The worker finished it first: the projection kept that earlier outcome.
            check_cancellable(after.status, after.id)
        return after

    async def delete(self, request: ScanDeleteRequest, ctx: CallContext) -> ScanDeletedReply:
        async with self._locked(request.scan_id):
            found = await self._scan(request.scan_id, request.only_project)
            check_deletable(found.status, found.label, force=request.force, scan_id=found.id)
            await self._emit(
                ScanDeleted(
                    scan_id=found.id, project_id=found.project_id, forced=bool(found.label)
                ),
                scan_id=found.id,
                ctx=ctx,
            )
        return ScanDeletedReply(scan_id=request.scan_id, forced=bool(found.label))

    # ---- reads ------------------------------------------------------------------------------
    async def get(self, request: ScanRef, _ctx: CallContext) -> ScanView:
        return await self._scan(request.scan_id, request.only_project)

    async def log(self, request: ScanLogRequest, _ctx: CallContext) -> ScanLogPage:
        found = await self._scan(request.scan.scan_id, request.scan.only_project)
        query = request.query
        rows = await queries.log_entries(
            self.pool, found.id, after=_seq_after(query.cursor), limit=query.limit
        )
        items, cursor = _page(rows, query.limit)
        return ScanLogPage(scan_id=found.id, items=items, next_cursor=cursor)

    async def list(self, request: ScanListRequest, _ctx: CallContext) -> ScanPage:
        query = request.query
        rows = await queries.scans(
            self.pool, request.project_id, query, after=_seq_after(query.cursor)
        )
        items, cursor = _page(rows, query.limit)
        return ScanPage(items=items, next_cursor=cursor)

    async def snapshots(self, request: SnapshotRequest, _ctx: CallContext) -> SnapshotPage:
        query = request.query
        rows = await queries.snapshots(
            self.pool, request.project_id, after=_seq_after(query.cursor), limit=query.limit
        )
        items, cursor = _page(rows, query.limit)
        return SnapshotPage(items=items, next_cursor=cursor)

    async def components(self, request: ComponentsRequest, _ctx: CallContext) -> ComponentPage:
        query = request.query
        expressions, _ = queries.component_sort(query)
        after = _after(query.cursor, len(expressions))
        scan_id = await self._snapshot(request.project_id, query.scan_id)
        if scan_id is None:
            return ComponentPage(scan_id=None, items=[], next_cursor=None)
        with _sorted_by_cursor():
            rows = await queries.components(self.pool, scan_id, query, after=after)
        items, cursor = _page(rows, query.limit)
        return ComponentPage(scan_id=scan_id, items=items, next_cursor=cursor)

    async def vulnerabilities(
        self, request: VulnerabilitiesRequest, _ctx: CallContext
    ) -> FindingPage:
        query = request.query
        expressions, _ = queries.finding_sort(query)
        after = _after(query.cursor, len(expressions))
        scan_id = await self._snapshot(request.project_id, query.scan_id)
        if scan_id is None:
            return FindingPage(scan_id=None, items=[], next_cursor=None)
        with _sorted_by_cursor():
            rows = await queries.findings(self.pool, scan_id, query, after=after)
        items, cursor = _page(rows, query.limit)
        return FindingPage(scan_id=scan_id, items=items, next_cursor=cursor)

    async def finding(self, request: FindingRef, _ctx: CallContext) -> FindingView:
        found = await queries.finding(self.pool, request.finding_id)
        if found is None or (
            request.only_project is not None and found.project_id != request.only_project
        ):
            raise FindingNotFound(f"no finding {request.finding_id!r}")
        return found

    async def detection_findings(
        self, request: DetectionFindingsRequest, _ctx: CallContext
    ) -> DetectionFindingPage:
        """Findings across projects: every (chosen) project's latest snapshot at once."""
        after = decode_cursor(request.cursor, kinds=(int, str)) if request.cursor else None
        scan_ids = await queries.latest_snapshot_ids(
            self.pool, project_ids=request.project_ids, repo=request.repo
        )
        if not scan_ids:
            return DetectionFindingPage(items=[], next_cursor=None, snapshots=0)
        rows = await queries.detection_findings(self.pool, scan_ids, request, after=after)
        items, cursor = _page(rows, request.limit)
        return DetectionFindingPage(items=items, next_cursor=cursor, snapshots=len(scan_ids))

    # ---- helpers ----------------------------------------------------------------------------
    async def _scan(self, scan_id: str, only_project: str | None) -> ScanView:
        found = await queries.scan(self.pool, scan_id)
        if found is None or (only_project is not None and found.project_id != only_project):
            raise ScanNotFound(f"no scan {scan_id!r}")
        return found

    async def _snapshot(self, project_id: str, pinned: str | None) -> str | None:
        """The scan a project read looks at: the pinned one (a succeeded scan of the
        project) or the latest snapshot (None when the project has none)."""
        if pinned is None:
            return await queries.latest_snapshot(self.pool, project_id)
        found = await queries.scan(self.pool, pinned)
        if found is None or found.project_id != project_id:
            raise ScanNotFound(
                f"no scan {pinned!r} in this project",
                extra={
                    "errors": [{"field": "$.scan_id", "message": "unknown scan", "in": "query"}]
                },
            )
        if found.status != "succeeded":
            raise ScanNotSucceeded(
                f"scan {pinned} is {found.status}; only a succeeded scan is a snapshot",
                extra={"scan_status": found.status},
            )
        return found.id

    async def _emit(self, payload: EventPayload, *, scan_id: str, ctx: CallContext) -> int:
        return await publish_visible(
            self.runtime.bus,
            self.runner,
            payload,
            aggregate=f"scan:{scan_id}",
            ctx=ctx,
            settings=self.runtime.settings,
        )

    def _locked(self, scan_id: str) -> AbstractAsyncContextManager[asyncpg.Connection]:
        return advisory_locked(self.pool, f"scan:{scan_id}")


async def queue_scan(
    runtime: Runtime,
    runner: ProjectionRunner,
    blobs: BlobStore,
    request: ScanSubmitRequest,
    *,
    ctx: CallContext,
    scan_id: str,
    event_id: str | None = None,
    artifact_id: str | None = None,
    data: bytes | None = None,
) -> ScanAccepted:
    """Check a stored upload and publish its ``scan.queued`` (visible on return): what
    ``POST /api/v1/projects/{p}/scans`` does, and what the registry's scan on upload does
    with the SBOMs an artifact carries (``artifact_id``; a deterministic ``scan_id`` and
    ``event_id``, so a re-run of its job queues the same scan once). ``data``: the upload's
    bytes when the caller read them already."""
    settings = runtime.settings
    limit = settings.max_upload_bytes
    if request.kind == "sbom":
        limit = min(limit, settings.max_sbom_bytes)
    if request.size > limit:
        raise UploadTooLarge(
            f"the upload is {request.size} bytes; at most {limit} are accepted",
            code="sbom_too_large" if request.kind == "sbom" else "upload_too_large",
            extra={"limit": limit},
        )
    if data is None:
        try:
            data = await blobs.get(request.source_digest)
        except NotFound:
            raise SourceMissing(f"no stored upload {request.source_digest}") from None
    if len(data) != request.size:
        raise ValidationFailed(
            f"the stored upload has {len(data)} bytes, not {request.size}",
            extra={"errors": [{"field": "$.size", "message": "does not match the upload"}]},
        )
    # Cheap: format detection (a byte search), or the zip's central directory.
    detected = await asyncio.to_thread(vet_upload, request.kind, data)
    del data
    await publish_visible(
        runtime.bus,
        runner,
        ScanQueued(
            scan_id=scan_id,
            project_id=request.project_id,
            kind=request.kind,
            repo=request.repo,
            commit=request.commit,
            label=request.label,
            source_digest=request.source_digest,
            source_name=request.source_name,
            size=request.size,
            format=detected,
            artifact_id=artifact_id,
        ),
        aggregate=f"scan:{scan_id}",
        ctx=ctx,
        settings=settings,
        event_id=event_id,
    )
    return ScanAccepted(scan_id=scan_id, status="queued", format=detected)


def _after(cursor: str | None, length: int) -> CursorKey | None:
    return decode_cursor(cursor, length=length) if cursor else None


def _seq_after(cursor: str | None) -> CursorKey | None:
    """The cursor of a list ordered by a stream sequence."""
    return decode_cursor(cursor, kinds=(int,)) if cursor else None


@contextmanager
def _sorted_by_cursor() -> Iterator[None]:
    """A list sorted by mixed-type expressions gets its cursor's parts as query arguments:
    a hand-made cursor of the wrong types is the caller's error (422), not ours."""
    try:
        yield
    except asyncpg.DataError as exc:
        raise InvalidCursor(
            "the cursor belongs to another list or sort",
            extra={"errors": [{"field": "$.cursor", "message": "invalid cursor"}]},
        ) from exc


def _page(rows: Sequence[tuple[CursorKey, T]], limit: int) -> tuple[list[T], str | None]:
    page = [item for _, item in rows[:limit]]
    if len(rows) <= limit or not page:
        return page, None
    return page, encode_cursor(rows[limit - 1][0])
