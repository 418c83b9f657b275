"""A snapshot as the reports read it: which scan (pinned or the latest), its components
(from the result blob, which keeps hashes and the dependency graph) and its findings (from
the read model, with their current triage state), as the domain's values.

Findings *of a snapshot* are those it had: matched (``affected``; ``not_evaluated`` pairs
are counted apart), and not resolved by a re-match (an advisory withdrawn, a version no
longer in range). A finding resolved because a later snapshot no longer has it
(``not_in_new_snapshot``) is still a finding of its own snapshot.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import TypeAlias

import asyncpg

from contracts.rpc.scanner_scans import ScanView
from services.scanner.domain.findings import Finding
from services.scanner.domain.model import Component, Dependency
from services.scanner.scans import queries, store
from services.scanner.scans.handlers import ScanNotFound, ScanNotSucceeded
from services.scanner.scans.result import ComponentRecord, ScanResult, decode_result
from shared.blobs import BlobStore
from shared.errors import NotFound

Queryable: TypeAlias = asyncpg.Pool | asyncpg.Connection

IN_SNAPSHOT = "(f.resolved_at IS NULL OR f.resolved_reason = 'not_in_new_snapshot')"


class NoSnapshot(NotFound):
    code, title = "no_snapshot", "The project has no snapshot"


async def resolve(db: Queryable, project_id: str, pinned: str | None, *, field: str) -> ScanView:
    """The pinned scan (a succeeded scan of the project) or the latest snapshot."""
    if pinned is None:
        latest = await queries.latest_snapshot(db, project_id)
        found = await queries.scan(db, latest) if latest is not None else None
        if found is None:
            raise NoSnapshot("the project has no succeeded scan yet: upload an SBOM or source")
        return found
    found = await queries.scan(db, pinned)
    if found is None or found.project_id != project_id:
        raise ScanNotFound(
            f"no scan {pinned!r} in this project",
            extra={"errors": [{"field": f"$.{field}", "message": "unknown scan", "in": "query"}]},
        )
    if found.status != "succeeded":
        raise ScanNotSucceeded(
            f"scan {pinned} is {found.status}; only a succeeded scan is a snapshot",
            extra={"scan_status": found.status},
        )
    return found


async def latest_or_none(db: Queryable, project_id: str, pinned: str | None) -> ScanView | None:
    try:
        return await resolve(db, project_id, pinned, field="scan_id")
    except NoSnapshot:
        return None


async def previous(db: Queryable, scan: ScanView) -> str | None:
    """The project's snapshot completed just before ``scan``."""
    found = await db.fetchval(
        "SELECT id FROM scanner.scans WHERE project_id = $1 AND status = 'succeeded' "
        "AND deleted_at IS NULL AND completed_seq < (SELECT completed_seq FROM scanner.scans "
        "WHERE id = $2) ORDER BY completed_seq DESC LIMIT 1",
        scan.project_id,
        scan.id,
    )
    return str(found) if found is not None else None


async def result_of(blobs: BlobStore, scan: ScanView) -> ScanResult:
    assert scan.result_digest is not None  # a succeeded scan has one
    return decode_result(await blobs.get(scan.result_digest))


def component_of(record: ComponentRecord) -> Component:
    return Component(
        ref=record.ref,
        name=record.name,
        version=record.version,
        purl=record.purl,
        ecosystem=record.ecosystem,
        type=record.type,
        group=record.group,
        hashes=record.hashes,
        licenses=record.licenses,
        scope=record.scope,  # type: ignore[arg-type]
        direct=record.direct,
    )


async def table_components(db: Queryable, scan_id: str) -> list[Component]:
    """The snapshot's components from the read model (no hashes: what a diff needs)."""
    rows = await db.fetch(
        'SELECT ref, name, version, purl, ecosystem, type, "group", scope, direct '
        "FROM scanner.components WHERE scan_id = $1 ORDER BY ref",
        scan_id,
    )
    return [Component(**dict(row)) for row in rows]


async def findings(db: Queryable, scan_id: str) -> tuple[list[Finding], int]:
    """The affected findings of the snapshot (by id) and how many pairs were not evaluated."""
    columns = ", ".join(f"f.{column}" for column in store.FINDING_COLUMNS)
    rows = await db.fetch(
        f"SELECT {columns}, f.match FROM scanner.findings f "
        f"WHERE f.scan_id = $1 AND {IN_SNAPSHOT} ORDER BY f.id",
        scan_id,
    )
    affected = [store.finding_of(row) for row in rows if row["match"] == "affected"]
    return affected, sum(1 for row in rows if row["match"] == "not_evaluated")


async def export_timestamp(db: Queryable, scan: ScanView) -> dt.datetime:
    """When what an export of the snapshot says was last true: its completion, or the
    latest triage or re-match of its findings (the same state exports the same bytes)."""
    assert scan.finished_at is not None
    latest = await db.fetchval(
        "SELECT max(GREATEST(f.triaged_at, f.discovered_at, CASE WHEN f.resolved_reason "
        "IS DISTINCT FROM 'not_in_new_snapshot' THEN f.resolved_at END)) "
        "FROM scanner.findings f WHERE f.scan_id = $1",
        scan.id,
    )
    return max(scan.finished_at, latest) if latest is not None else scan.finished_at


def subject_ref(components: Sequence[Component], dependencies: Iterable[Dependency]) -> str | None:
    """The ref of the document's own subject: the one dependency-graph node that is not a
    component (the SBOM's ``metadata.component``); None when there is not exactly one."""
    refs = {c.ref for c in components}
    roots = {d.ref for d in dependencies if d.ref not in refs}
    return roots.pop() if len(roots) == 1 else None


def third_party(
    components: Sequence[Component], dependencies: Sequence[Dependency]
) -> list[Component]:
    """Components without the project's own: an ``application`` that is a root of the
    dependency graph (it depends on others, and no other component depends on it; the
    document's subject may) is the product itself, as some tools list it among the
    components."""
    refs = {c.ref for c in components}
    depended = {child for d in dependencies if d.ref in refs for child in d.depends_on}
    depending = {d.ref for d in dependencies if d.depends_on}
    own = {
        c.ref
        for c in components
        if c.type == "application" and c.ref in depending and c.ref not in depended
    }
    return [c for c in components if c.ref not in own]
