"""The scans read model in PostgreSQL: what the projection writes (rows from events and
result blobs) and the few reads the worker needs. Rows become values here, nowhere else."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import asyncpg
import msgspec

from contracts.events.scans import ScanQueued
from services.scanner.domain.findings import Finding
from services.scanner.scans.analysis import (
    LICENSE_RANK,
    SEVERITY_RANK,
    PriorFinding,
    TriageMemo,
)
from services.scanner.scans.result import ComponentRecord, FindingRecord, Resolution

Queryable: TypeAlias = asyncpg.Pool | asyncpg.Connection

SCHEMA = "scanner"
JOBS_TABLE = "scanner.jobs"
PROJECTION_TABLES = ("scans", "scan_log", "components", "findings", "triage", "jobs")
_json = msgspec.json.Encoder()
# The columns of scanner.findings that make a domain Finding (see finding_of).
FINDING_COLUMNS = (
    "id",
    "component_ref",
    "component_name",
    "purl",
    "ecosystem",
    "package",
    "component_version",
    "vulnerability_id",
    "advisory_ids",
    "aliases",
    "severity",
    "cvss_score",
    "epss",
    "epss_percentile",
    "state",
    "justification",
    "detail",
    "version",
    "discovered_at",
)


def finding_of(row: Mapping[str, Any]) -> Finding:
    """A scanner.findings row (its FINDING_COLUMNS) as the domain's Finding."""
    return Finding(
        id=row["id"],
        component_ref=row["component_ref"],
        component_name=row["component_name"],
        purl=row["purl"],
        ecosystem=row["ecosystem"],
        package=_package_name(row["package"], row["ecosystem"]),
        version=row["component_version"],
        vulnerability_id=row["vulnerability_id"],
        advisory_ids=tuple(row["advisory_ids"]),
        aliases=tuple(row["aliases"]),
        severity=row["severity"],
        cvss_score=round(row["cvss_score"], 1) if row["cvss_score"] is not None else None,
        epss=row["epss"],
        epss_percentile=row["epss_percentile"],
        state=row["state"],
        justification=row["justification"],
        detail=row["detail"],
        revision=row["version"],
        discovered_at=row["discovered_at"],
    )


def _package_name(package: str, ecosystem: str) -> str:
    # The read model writes packages as "<ecosystem>:<key>"; the domain wants the key.
    prefix = f"{ecosystem}:"
    return package[len(prefix) :] if package.startswith(prefix) else package


class ScanRow(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    project_id: str
    kind: str
    status: str
    repo: str | None
    commit: str | None
    label: str | None
    source_digest: str
    source_name: str
    format: str
    result_digest: str | None
    correlation_id: str | None
    queued_event_id: str
    created_at: dt.datetime
    deleted: bool


_SCAN_ROW = (
    "id, project_id, kind, status, repo, commit, label, source_digest, source_name, format, "
    "result_digest, correlation_id, queued_event_id, created_at, "
    "deleted_at IS NOT NULL AS deleted"
)


def _scan_row(row: asyncpg.Record) -> ScanRow:
    return ScanRow(**dict(row))


async def scan_row(db: Queryable, scan_id: str, *, for_update: bool = False) -> ScanRow | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await db.fetchrow(f"SELECT {_SCAN_ROW} FROM scanner.scans WHERE id = $1{lock}", scan_id)
    return _scan_row(row) if row else None


# ---- lifecycle ------------------------------------------------------------------------------
async def insert_scan(
    conn: asyncpg.Connection,
    payload: ScanQueued,
    *,
    at: dt.datetime,
    actor: str,
    correlation_id: str | None,
    event_id: str,
    sequence: int,
) -> bool:
    inserted = await conn.fetchval(
        "INSERT INTO scanner.scans (id, project_id, kind, status, repo, commit, label, "
        "source_digest, source_name, size, format, progress, created_at, created_by, "
        "correlation_id, queued_event_id, queued_seq, version) "
        "VALUES ($1, $2, $3, 'queued', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, "
        "$16, $16) ON CONFLICT (id) DO NOTHING RETURNING true",
        payload.scan_id,
        payload.project_id,
        payload.kind,
        payload.repo,
        payload.commit,
        payload.label,
        payload.source_digest,
        payload.source_name,
        payload.size,
        payload.format,
        {"stage": "queued", "done": 0, "total": 0, "message": "waiting for a worker"},
        at,
        actor,
        correlation_id,
        event_id,
        sequence,
    )
    return bool(inserted)


async def scan_status(conn: asyncpg.Connection, scan_id: str) -> tuple[str, bool] | None:
    """(status, deleted) of a scan, locked for this transaction."""
    row = await conn.fetchrow(
        "SELECT status, deleted_at IS NOT NULL AS deleted FROM scanner.scans WHERE id = $1 "
        "FOR UPDATE",
        scan_id,
    )
    return (row["status"], row["deleted"]) if row else None


async def set_started(
    conn: asyncpg.Connection, scan_id: str, *, status: str, at: dt.datetime, sequence: int
) -> None:
    await conn.execute(
        "UPDATE scanner.scans SET status = $2, started_at = COALESCE(started_at, $3), "
        "progress = $4, version = $5 WHERE id = $1",
        scan_id,
        status,
        at,
        {"stage": "started", "done": 0, "total": 0, "message": "started"},
        sequence,
    )


async def set_progress(
    conn: asyncpg.Connection, scan_id: str, *, progress: dict[str, Any], sequence: int
) -> None:
    await conn.execute(
        "UPDATE scanner.scans SET status = 'running', progress = $2, version = $3 WHERE id = $1",
        scan_id,
        progress,
        sequence,
    )


async def set_succeeded(
    conn: asyncpg.Connection,
    scan_id: str,
    *,
    at: dt.datetime,
    sbom_digest: str,
    result_digest: str,
    spec_version: str,
    summary: dict[str, Any],
    component_count: int,
    sequence: int,
    vulndb_advisories: int,
) -> None:
    await conn.execute(
        "UPDATE scanner.scans SET status = 'succeeded', finished_at = $2, sbom_digest = $3, "
        "result_digest = $4, spec_version = $5, summary = $6, completed_seq = $7, version = $7, "
        "started_at = COALESCE(started_at, $2), progress = $8, vulndb_advisories = $9 "
        "WHERE id = $1",
        scan_id,
        at,
        sbom_digest,
        result_digest,
        spec_version,
        summary,
        sequence,
        {
            "stage": "store",
            "done": component_count,
            "total": component_count,
            "message": "succeeded",
        },
        vulndb_advisories,
    )


async def set_finished(
    conn: asyncpg.Connection,
    scan_id: str,
    *,
    status: str,
    at: dt.datetime,
    error: dict[str, Any] | None,
    sequence: int,
) -> None:
    await conn.execute(
        "UPDATE scanner.scans SET status = $2, finished_at = $3, error = $4, version = $5 "
        "WHERE id = $1",
        scan_id,
        status,
        at,
        error,
        sequence,
    )


async def set_deleted(
    conn: asyncpg.Connection, scan_id: str, *, at: dt.datetime, forced: bool, sequence: int
) -> None:
    await conn.execute(
        "UPDATE scanner.scans SET deleted_at = $2, deleted_forced = $3, version = $4 "
        "WHERE id = $1 AND deleted_at IS NULL",
        scan_id,
        at,
        forced,
        sequence,
    )
    for table in ("components", "findings", "scan_log"):
        await conn.execute(f"DELETE FROM scanner.{table} WHERE scan_id = $1", scan_id)


async def log_line(
    conn: asyncpg.Connection,
    scan_id: str,
    *,
    sequence: int,
    at: dt.datetime,
    event: str,
    stage: str | None,
    message: str,
    level: str = "info",
) -> None:
    await conn.execute(
        "INSERT INTO scanner.scan_log (scan_id, sequence, at, event, stage, level, message) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        scan_id,
        sequence,
        at,
        event,
        stage,
        level,
        message,
    )


# ---- snapshot rows --------------------------------------------------------------------------
async def insert_components(
    conn: asyncpg.Connection, scan_id: str, components: Sequence[ComponentRecord]
) -> None:
    if not components:
        return
    await conn.execute(
        "INSERT INTO scanner.components (scan_id, ref, name, version, purl, ecosystem, package, "
        'type, "group", scope, direct, licenses, license_expression, license_category, '
        "license_rank) "
        "SELECT $1, ref, name, version, purl, ecosystem, package, type, grp, scope, direct, "
        "licenses::jsonb, expression, category, rank FROM unnest($2::text[], $3::text[], "
        "$4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], "
        "$11::boolean[], $12::text[], $13::text[], $14::text[], $15::smallint[]) "
        "AS t(ref, name, version, purl, ecosystem, package, type, grp, scope, direct, licenses, "
        "expression, category, rank) ON CONFLICT DO NOTHING",
        scan_id,
        [c.ref for c in components],
        [c.name for c in components],
        [c.version for c in components],
        [c.purl for c in components],
        [c.ecosystem for c in components],
        [c.package for c in components],
        [c.type for c in components],
        [c.group for c in components],
        [c.scope for c in components],
        [c.direct for c in components],
        [_json.encode(c.licenses).decode() for c in components],
        [c.license_expression for c in components],
        [c.license_category for c in components],
        [LICENSE_RANK.get(c.license_category, 1) for c in components],
    )


async def insert_findings(
    conn: asyncpg.Connection,
    *,
    scan_id: str,
    project_id: str,
    findings: Sequence[FindingRecord],
    cause: str,
) -> None:
    """Insert findings (a finding seen again is re-opened with the new facts), then let the
    project's triage memory decide their state: whatever the worker saw, the memory as of
    this event in stream order is the truth, on the first run and on a replay alike."""
    if not findings:
        return
    await conn.execute(
        "INSERT INTO scanner.findings (id, scan_id, project_id, component_ref, component_name, "
        "component_version, purl, ecosystem, package, vulnerability_id, advisory_ids, aliases, "
        "match, match_reason, severity, severity_rank, cvss_score, epss, epss_percentile, state, "
        "justification, detail, cause, discovered_at) "
        "SELECT t.id, $1, $2, t.ref, t.name, t.version, t.purl, t.ecosystem, t.package, t.vuln, "
        "ARRAY(SELECT jsonb_array_elements_text(t.advisories::jsonb)), "
        "ARRAY(SELECT jsonb_array_elements_text(t.aliases::jsonb)), t.match, t.reason, "
        "t.severity, t.rank, t.cvss, t.epss, t.percentile, t.state, t.justification, t.detail, "
        "$3, t.discovered "
        "FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], "
        "$10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], "
        "$16::text[], $17::smallint[], $18::real[], $19::float8[], $20::float8[], $21::text[], "
        "$22::text[], $23::text[], $24::timestamptz[]) AS t(id, ref, name, version, purl, "
        "ecosystem, package, vuln, advisories, aliases, match, reason, severity, rank, cvss, "
        "epss, percentile, state, justification, detail, discovered) "
        "ON CONFLICT (id) DO UPDATE SET advisory_ids = EXCLUDED.advisory_ids, "
        "aliases = EXCLUDED.aliases, match = EXCLUDED.match, match_reason = EXCLUDED.match_reason, "
        "severity = EXCLUDED.severity, severity_rank = EXCLUDED.severity_rank, "
        "cvss_score = EXCLUDED.cvss_score, epss = EXCLUDED.epss, "
        "epss_percentile = EXCLUDED.epss_percentile, resolved_at = NULL, resolved_reason = NULL",
        scan_id,
        project_id,
        cause,
        [f.id for f in findings],
        [f.component_ref for f in findings],
        [f.component_name for f in findings],
        [f.component_version for f in findings],
        [f.purl for f in findings],
        [f.ecosystem for f in findings],
        [f.package for f in findings],
        [f.vulnerability_id for f in findings],
        [_json.encode(f.advisory_ids).decode() for f in findings],
        [_json.encode(f.aliases).decode() for f in findings],
        [f.match for f in findings],
        [f.match_reason for f in findings],
        [f.severity for f in findings],
        [SEVERITY_RANK.get(f.severity, 0) for f in findings],
        [f.cvss_score for f in findings],
        [f.epss for f in findings],
        [f.epss_percentile for f in findings],
        [f.state for f in findings],
        [f.justification for f in findings],
        [f.detail for f in findings],
        [f.discovered_at for f in findings],
    )
    await conn.execute(
        "UPDATE scanner.findings f SET state = t.state, justification = t.justification, "
        "detail = t.detail FROM scanner.triage t WHERE f.scan_id = $1 AND f.id = ANY($2::text[]) "
        "AND t.project_id = f.project_id AND t.package = f.package "
        "AND t.vulnerability_id = f.vulnerability_id "
        "AND (f.state, f.justification, f.detail) IS DISTINCT FROM "
        "(t.state, t.justification, t.detail)",
        scan_id,
        [f.id for f in findings],
    )


async def resolve_findings(
    conn: asyncpg.Connection, resolved: Sequence[Resolution], *, at: dt.datetime
) -> None:
    if not resolved:
        return
    await conn.execute(
        "UPDATE scanner.findings f SET resolved_at = $3, resolved_reason = t.reason "
        "FROM unnest($1::text[], $2::text[]) AS t(id, reason) "
        "WHERE f.id = t.id AND f.resolved_at IS NULL",
        [r.finding_id for r in resolved],
        [r.reason for r in resolved],
        at,
    )


async def triage_finding(
    conn: asyncpg.Connection,
    *,
    finding_id: str,
    project_id: str,
    package: str,
    vulnerability_id: str,
    state: str,
    justification: str | None,
    detail: str,
    version: int,
    at: dt.datetime,
    sequence: int,
) -> None:
    await conn.execute(
        "UPDATE scanner.findings SET state = $2, justification = $3, detail = $4, version = $5, "
        "triaged_at = $6 WHERE id = $1",
        finding_id,
        state,
        justification,
        detail,
        version,
        at,
    )
    await conn.execute(
        "INSERT INTO scanner.triage (project_id, package, vulnerability_id, state, justification, "
        "detail, finding_id, updated_at, updated_seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
        "ON CONFLICT (project_id, package, vulnerability_id) DO UPDATE SET state = $4, "
        "justification = $5, detail = $6, finding_id = $7, updated_at = $8, updated_seq = $9",
        project_id,
        package,
        vulnerability_id,
        state,
        justification,
        detail,
        finding_id,
        at,
        sequence,
    )


async def latest_snapshots(
    conn: asyncpg.Connection, *, packages: Sequence[tuple[str, str]] | None
) -> list[tuple[str, str]]:
    """(project id, scan id) of every project's latest snapshot; with ``packages``, only those
    whose snapshot has a component of one of them (``(ecosystem, key)``) or was matched
    against an empty database."""
    rows = await conn.fetch(
        "SELECT DISTINCT ON (project_id) project_id, id, vulndb_advisories FROM scanner.scans "
        "WHERE status = 'succeeded' AND deleted_at IS NULL "
        "ORDER BY project_id, completed_seq DESC"
    )
    latest = [(row["project_id"], row["id"]) for row in rows]
    if packages is None or not latest:
        return latest
    unmatched = {row["id"] for row in rows if row["vulndb_advisories"] == 0}
    wanted = [f"{ecosystem}:{key}" for ecosystem, key in packages]
    hit = await conn.fetch(
        "SELECT DISTINCT scan_id FROM scanner.components WHERE scan_id = ANY($1::text[]) "
        "AND package = ANY($2::text[])",
        [scan for _, scan in latest],
        wanted,
    )
    hits = {row["scan_id"] for row in hit} | unmatched
    return [(project, scan) for project, scan in latest if scan in hits]


async def rerate_findings(conn: asyncpg.Connection, findings: Sequence[FindingRecord]) -> None:
    """Open findings whose severity a re-match derived again (an alias was imported)."""
    if not findings:
        return
    await conn.executemany(
        "UPDATE scanner.findings SET severity = $2, severity_rank = $3, cvss_score = $4 "
        "WHERE id = $1 AND resolved_at IS NULL",
        [(f.id, f.severity, SEVERITY_RANK.get(f.severity, 0), f.cvss_score) for f in findings],
    )


# ---- reads the worker needs -----------------------------------------------------------------
async def previous_snapshot(
    db: Queryable, project_id: str, *, before_scan: str
) -> tuple[str | None, list[PriorFinding]]:
    """The project's latest snapshot other than ``before_scan``, and its open findings."""
    scan_id = await db.fetchval(
        "SELECT id FROM scanner.scans WHERE project_id = $1 AND status = 'succeeded' "
        "AND deleted_at IS NULL AND id <> $2 ORDER BY completed_seq DESC LIMIT 1",
        project_id,
        before_scan,
    )
    if scan_id is None:
        return None, []
    return scan_id, await open_findings(db, scan_id)


async def open_findings(db: Queryable, scan_id: str) -> list[PriorFinding]:
    rows = await db.fetch(
        "SELECT id, scan_id, package, vulnerability_id, discovered_at, match = 'affected' AS "
        "affected, severity FROM scanner.findings WHERE scan_id = $1 AND resolved_at IS NULL",
        scan_id,
    )
    return [PriorFinding(**dict(row)) for row in rows]


async def triage_memory(db: Queryable, project_id: str) -> dict[tuple[str, str], TriageMemo]:
    rows = await db.fetch(
        "SELECT package, vulnerability_id, state, justification, detail FROM scanner.triage "
        "WHERE project_id = $1",
        project_id,
    )
    return {
        (row["package"], row["vulnerability_id"]): TriageMemo(
            state=row["state"], justification=row["justification"], detail=row["detail"]
        )
        for row in rows
    }


async def snapshot_components(db: Queryable, scan_id: str) -> list[ComponentRecord]:
    rows = await db.fetch(
        'SELECT ref, name, version, purl, ecosystem, package, type, "group", scope, direct, '
        "license_expression, license_category FROM scanner.components WHERE scan_id = $1 "
        "ORDER BY ref",
        scan_id,
    )
    return [ComponentRecord(**dict(row)) for row in rows]
