"""Reads of the scans read model for the API: rows become the contract's views here.

Lists use keyset pagination: every sort is a tuple of SQL expressions compared as a row
(``(a, b, id) > ($1, $2, $3)``) in one direction, the last one unique, so a page starts
strictly after the previous one however rows are added meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import asyncpg
import msgspec

from contracts.events.scans import NOT_EFFECTIVE_STATES
from contracts.rpc.scanner_scans import (
    ComponentQuery,
    ComponentView,
    DetectionFindingsRequest,
    FindingView,
    LicenseStatement,
    ScanError,
    ScanListQuery,
    ScanLogEntry,
    ScanProgress,
    ScanSummary,
    ScanView,
    Severity,
    SnapshotView,
    VulnerabilityQuery,
)
from services.scanner.scans.analysis import SEVERITY_RANK
from shared.search import like_escape

Queryable: TypeAlias = asyncpg.Pool | asyncpg.Connection
CursorKey = tuple[str | int, ...]

_RANK_SEVERITY: dict[int, Severity] = {
    4: "CRITICAL",
    3: "HIGH",
    2: "MEDIUM",
    1: "LOW",
    0: "UNKNOWN",
}
_NOT_EFFECTIVE = sorted(NOT_EFFECTIVE_STATES)
# No braces: the clause goes through str.format in Filters.add.
_OPEN_EFFECTIVE = (
    "f.resolved_at IS NULL AND f.match = 'affected' AND f.state NOT IN ("
    + ", ".join(f"'{state}'" for state in _NOT_EFFECTIVE)
    + ")"
)

_SCAN_COLUMNS = (
    "id, project_id, kind, status, repo, commit, label, source_digest, source_name, size, "
    "format, spec_version, sbom_digest, result_digest, progress, error, summary, created_at, "
    "created_by, started_at, finished_at, version, queued_seq, completed_seq"
)


@dataclass
class Filters:
    """WHERE clauses with numbered parameters, built up one condition at a time."""

    clauses: list[str]
    args: list[Any]

    def add(self, template: str, *values: Any) -> None:
        numbers = []
        for value in values:
            self.args.append(value)
            numbers.append(f"${len(self.args)}")
        self.clauses.append(template.format(*numbers))

    def keyset(self, expressions: Sequence[str], after: CursorKey | None, descending: bool) -> str:
        """The row comparison that starts after ``after``, and the matching ORDER BY."""
        if after is not None:
            placeholders = []
            for value in after:
                self.args.append(value)
                placeholders.append(f"${len(self.args)}")
            op = "<" if descending else ">"
            self.clauses.append(f"({', '.join(expressions)}) {op} ({', '.join(placeholders)})")
        direction = " DESC" if descending else ""
        return ", ".join(f"{e}{direction}" for e in expressions)

    @property
    def where(self) -> str:
        return " AND ".join(self.clauses) if self.clauses else "true"


# ---- scans ----------------------------------------------------------------------------------
def _scan_view(row: asyncpg.Record) -> ScanView:
    progress, error, summary = row["progress"], row["error"], row["summary"]
    return ScanView(
        id=row["id"],
        project_id=row["project_id"],
        kind=row["kind"],
        status=row["status"],
        repo=row["repo"],
        commit=row["commit"],
        label=row["label"],
        source_digest=row["source_digest"],
        source_name=row["source_name"],
        size=row["size"],
        format=row["format"],
        spec_version=row["spec_version"],
        sbom_digest=row["sbom_digest"],
        result_digest=row["result_digest"],
        progress=msgspec.convert(progress, ScanProgress) if progress else None,
        error=msgspec.convert(error, ScanError) if error else None,
        summary=msgspec.convert(summary, ScanSummary) if summary else None,
        created_at=row["created_at"],
        created_by=row["created_by"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        version=row["version"],
    )


async def scan(db: Queryable, scan_id: str) -> ScanView | None:
    row = await db.fetchrow(
        f"SELECT {_SCAN_COLUMNS} FROM scanner.scans WHERE id = $1 AND deleted_at IS NULL",
        scan_id,
    )
    return _scan_view(row) if row else None


async def scans(
    db: Queryable, project_id: str, query: ScanListQuery, *, after: CursorKey | None
) -> list[tuple[CursorKey, ScanView]]:
    filters = Filters(["deleted_at IS NULL"], [])
    filters.add("project_id = {}", project_id)
    if query.status:
        filters.add("status = ANY({}::text[])", list(query.status))
    if query.kind:
        filters.add("kind = {}", query.kind)
    if query.label:
        filters.add("label = {}", query.label)
    order = filters.keyset(["queued_seq"], after, descending=True)
    filters.args.append(query.limit + 1)
    rows = await db.fetch(
        f"SELECT {_SCAN_COLUMNS} FROM scanner.scans WHERE {filters.where} ORDER BY {order} "
        f"LIMIT ${len(filters.args)}",
        *filters.args,
    )
    return [((row["queued_seq"],), _scan_view(row)) for row in rows]


async def log_entries(
    db: Queryable, scan_id: str, *, after: CursorKey | None, limit: int
) -> list[tuple[CursorKey, ScanLogEntry]]:
    filters = Filters([], [])
    filters.add("scan_id = {}", scan_id)
    order = filters.keyset(["sequence"], after, descending=False)
    filters.args.append(limit + 1)
    rows = await db.fetch(
        "SELECT sequence, at, event, stage, level, message FROM scanner.scan_log "
        f"WHERE {filters.where} ORDER BY {order} LIMIT ${len(filters.args)}",
        *filters.args,
    )
    return [((row["sequence"],), ScanLogEntry(**dict(row))) for row in rows]


async def snapshots(
    db: Queryable, project_id: str, *, after: CursorKey | None, limit: int
) -> list[tuple[CursorKey, SnapshotView]]:
    filters = Filters(["status = 'succeeded'", "deleted_at IS NULL"], [])
    filters.add("project_id = {}", project_id)
    order = filters.keyset(["completed_seq"], after, descending=True)
    filters.args.append(limit + 1)
    rows = await db.fetch(
        "SELECT id, kind, repo, commit, label, format, finished_at, summary, completed_seq "
        f"FROM scanner.scans WHERE {filters.where} ORDER BY {order} LIMIT ${len(filters.args)}",
        *filters.args,
    )
    return [
        (
            (row["completed_seq"],),
            SnapshotView(
                scan_id=row["id"],
                kind=row["kind"],
                repo=row["repo"],
                commit=row["commit"],
                label=row["label"],
                format=row["format"],
                completed_at=row["finished_at"],
                summary=msgspec.convert(row["summary"], ScanSummary),
            ),
        )
        for row in rows
    ]


async def latest_snapshot(db: Queryable, project_id: str) -> str | None:
    found: Any = await db.fetchval(
        "SELECT id FROM scanner.scans WHERE project_id = $1 AND status = 'succeeded' "
        "AND deleted_at IS NULL ORDER BY completed_seq DESC LIMIT 1",
        project_id,
    )
    return str(found) if found is not None else None


# ---- components -----------------------------------------------------------------------------
_COMPONENT_SORTS: dict[str, tuple[list[str], bool]] = {
    # expressions, descending by default
    "name": (["c.name", "c.ref"], False),
    "purl": (["COALESCE(c.purl, '')", "c.ref"], False),
    "severity": (["COALESCE(s.top, -1)", "c.name", "c.ref"], True),
    "license_category": (["c.license_rank", "c.name", "c.ref"], False),
}


def component_sort(query: ComponentQuery) -> tuple[list[str], bool]:
    expressions, descending = _COMPONENT_SORTS[query.sort]
    if query.order is not None:
        descending = query.order == "desc"
    return expressions, descending


async def components(
    db: Queryable, scan_id: str, query: ComponentQuery, *, after: CursorKey | None
) -> list[tuple[CursorKey, ComponentView]]:
    filters = Filters([], [])
    filters.add("c.scan_id = {}", scan_id)
    if query.severity:
        ranks = sorted({SEVERITY_RANK[level] for level in query.severity})
        filters.add(
            "EXISTS (SELECT 1 FROM scanner.findings f WHERE f.scan_id = c.scan_id AND "
            f"f.component_ref = c.ref AND {_OPEN_EFFECTIVE} AND "
            "f.severity_rank = ANY({}::smallint[]))",
            ranks,
        )
    if query.license_category:
        filters.add("c.license_category = ANY({}::text[])", list(query.license_category))
    if query.direct is not None:
        filters.add("c.direct IS NOT DISTINCT FROM {}", query.direct)
    if query.scope:
        filters.add("c.scope = ANY({}::text[])", list(query.scope))
    expressions, descending = component_sort(query)
    order = filters.keyset(expressions, after, descending)
    filters.args.append(query.limit + 1)
    rows = await db.fetch(
        'SELECT c.ref, c.name, c.version, c.purl, c.ecosystem, c.package, c.type, c."group", '
        "c.scope, c.direct, c.licenses, c.license_expression, c.license_category, "
        "c.license_rank, COALESCE(s.count, 0) AS finding_count, s.top, "
        f"{', '.join(f'{e} AS k{i}' for i, e in enumerate(expressions))} "
        "FROM scanner.components c LEFT JOIN LATERAL (SELECT count(*) AS count, "
        "max(f.severity_rank) AS top FROM scanner.findings f WHERE f.scan_id = c.scan_id AND "
        f"f.component_ref = c.ref AND {_OPEN_EFFECTIVE}) s ON true "
        f"WHERE {filters.where} ORDER BY {order} LIMIT ${len(filters.args)}",
        *filters.args,
    )
    return [
        (
            tuple(row[f"k{i}"] for i in range(len(expressions))),
            ComponentView(
                ref=row["ref"],
                name=row["name"],
                version=row["version"],
                purl=row["purl"],
                ecosystem=row["ecosystem"],
                package=row["package"],
                type=row["type"],
                group=row["group"],
                scope=row["scope"],
                direct=row["direct"],
                licenses=msgspec.convert(row["licenses"], list[LicenseStatement]),
                license_expression=row["license_expression"],
                license_category=row["license_category"],
                finding_count=row["finding_count"],
                highest_severity=_RANK_SEVERITY.get(row["top"]) if row["top"] is not None else None,
            ),
        )
        for row in rows
    ]


# ---- findings -------------------------------------------------------------------------------
_DISCOVERED_KEY = "(extract(epoch FROM f.discovered_at) * 1000000)::bigint"
_FINDING_SORTS: dict[str, tuple[list[str], bool]] = {
    "severity": (["f.severity_rank", "f.cvss_key", "f.id"], True),
    "cvss": (["f.cvss_key", "f.severity_rank", "f.id"], True),
    "epss": (["f.epss_key", "f.severity_rank", "f.id"], True),
    "discovered_at": ([_DISCOVERED_KEY, "f.severity_rank", "f.id"], True),
    "component": (["f.component_name", "f.vulnerability_id", "f.id"], False),
}
_FINDING_COLUMNS = (
    "f.id, f.scan_id, f.project_id, f.component_ref, f.component_name, f.component_version, "
    "f.purl, f.ecosystem, f.package, f.vulnerability_id, f.advisory_ids, f.aliases, f.match, "
    "f.match_reason, f.severity, f.cvss_score, f.epss, f.epss_percentile, f.state, "
    "f.justification, f.detail, f.version, f.discovered_at, f.resolved_at, f.resolved_reason, "
    "c.license_category, c.direct, c.scope"
)


def _finding_view(row: asyncpg.Record) -> FindingView:
    return FindingView(
        id=row["id"],
        scan_id=row["scan_id"],
        project_id=row["project_id"],
        component_ref=row["component_ref"],
        component_name=row["component_name"],
        component_version=row["component_version"],
        purl=row["purl"],
        ecosystem=row["ecosystem"],
        package=row["package"],
        vulnerability_id=row["vulnerability_id"],
        advisory_ids=list(row["advisory_ids"]),
        aliases=list(row["aliases"]),
        match=row["match"],
        match_reason=row["match_reason"],
        severity=row["severity"],
        cvss_score=round(row["cvss_score"], 1) if row["cvss_score"] is not None else None,
        epss=row["epss"],
        epss_percentile=row["epss_percentile"],
        state=row["state"],
        justification=row["justification"],
        detail=row["detail"],
        effective=row["match"] == "affected" and row["state"] not in NOT_EFFECTIVE_STATES,
        license_category=row["license_category"] or "unknown",
        direct=row["direct"],
        scope=row["scope"] or "unknown",
        discovered_at=row["discovered_at"],
        resolved_at=row["resolved_at"],
        resolved_reason=row["resolved_reason"],
        version=row["version"],
    )


def finding_sort(query: VulnerabilityQuery) -> tuple[list[str], bool]:
    expressions, descending = _FINDING_SORTS[query.sort]
    if query.order is not None:
        descending = query.order == "desc"
    return expressions, descending


async def findings(
    db: Queryable, scan_id: str, query: VulnerabilityQuery, *, after: CursorKey | None
) -> list[tuple[CursorKey, FindingView]]:
    filters = Filters([], [])
    filters.add("f.scan_id = {}", scan_id)
    if not query.include_resolved:
        filters.clauses.append("f.resolved_at IS NULL")
    if query.severity:
        filters.add("f.severity = ANY({}::text[])", list(query.severity))
    if query.status:
        filters.add("f.state = ANY({}::text[])", list(query.status))
    if query.license_category:
        filters.add("c.license_category = ANY({}::text[])", list(query.license_category))
    if query.min_epss is not None:
        filters.add("f.epss >= {}", query.min_epss)
    expressions, descending = finding_sort(query)
    order = filters.keyset(expressions, after, descending)
    filters.args.append(query.limit + 1)
    rows = await db.fetch(
        f"SELECT {_FINDING_COLUMNS}, "
        f"{', '.join(f'{e} AS k{i}' for i, e in enumerate(expressions))} "
        "FROM scanner.findings f LEFT JOIN scanner.components c ON c.scan_id = f.scan_id "
        f"AND c.ref = f.component_ref WHERE {filters.where} ORDER BY {order} "
        f"LIMIT ${len(filters.args)}",
        *filters.args,
    )
    return [
        (tuple(row[f"k{i}"] for i in range(len(expressions))), _finding_view(row)) for row in rows
    ]


async def latest_snapshot_ids(
    db: Queryable, *, project_ids: Sequence[str] | None, repo: str | None
) -> list[str]:
    """Every project's latest snapshot (of those projects; with ``repo``, the latest of the
    scans of that git repository, compared in any case as GitHub does), by project id."""
    filters = Filters(["status = 'succeeded'", "deleted_at IS NULL"], [])
    if project_ids is not None:
        filters.add("project_id = ANY({}::text[])", list(project_ids))
    if repo is not None:
        filters.add("lower(repo) = lower({})", repo)
    rows = await db.fetch(
        "SELECT DISTINCT ON (project_id) id FROM scanner.scans "
        f"WHERE {filters.where} ORDER BY project_id, completed_seq DESC",
        *filters.args,
    )
    return [row["id"] for row in rows]


# Findings across projects: most severe first, then id descending; findings_detection
# (scan_id, severity_rank DESC, id DESC) WHERE resolved_at IS NULL serves it per scan.
_DETECTION_ORDER = ["f.severity_rank", "f.id"]


def detection_statement(
    scan_ids: Sequence[str], request: DetectionFindingsRequest, *, after: CursorKey | None
) -> tuple[str, list[Any]]:
    """The page of open findings of ``scan_ids`` after ``after``. Its shape decides the plan
    whatever the statistics say (issue 13: a nested loop chosen on stale statistics took
    20 s): per snapshot, a LATERAL index range of findings_detection cut at ``limit + 1``,
    then those few rows merged and cut again. No join or sort ever sees a whole snapshot."""
    filters = Filters(["f.scan_id = s.id", "f.resolved_at IS NULL"], [])
    scans_param = len(filters.args) + 1
    filters.args.append(list(scan_ids))
    if request.severity:
        filters.add("f.severity = ANY({}::text[])", list(request.severity))
    if request.min_severity is not None:
        filters.add("f.severity_rank >= {}", SEVERITY_RANK[request.min_severity])
    if request.state:
        filters.add("f.state = ANY({}::text[])", list(request.state))
    if request.epss_min is not None:
        filters.add("f.epss >= {}", request.epss_min)
    if request.package is not None:
        if request.package.startswith("pkg:"):
            filters.add("f.purl LIKE {} ESCAPE '\\'", like_escape(request.package) + "%")
        else:
            filters.add("lower(f.component_name) = lower({})", request.package)
    order = filters.keyset(_DETECTION_ORDER, after, descending=True)
    filters.args.append(request.limit + 1)
    limit = f"${len(filters.args)}"
    sql = (
        f"SELECT {_FINDING_COLUMNS}, f.severity_rank AS k0, f.id AS k1 "
        f"FROM unnest(${scans_param}::text[]) AS s(id) CROSS JOIN LATERAL ("
        f"SELECT * FROM scanner.findings f WHERE {filters.where} ORDER BY {order} "
        f"LIMIT {limit}) f LEFT JOIN scanner.components c ON c.scan_id = f.scan_id "
        f"AND c.ref = f.component_ref ORDER BY f.severity_rank DESC, f.id DESC LIMIT {limit}"
    )
    return sql, filters.args


async def detection_findings(
    db: Queryable,
    scan_ids: Sequence[str],
    request: DetectionFindingsRequest,
    *,
    after: CursorKey | None,
) -> list[tuple[CursorKey, FindingView]]:
    sql, args = detection_statement(scan_ids, request, after=after)
    rows = await db.fetch(sql, *args)
    return [((row["k0"], row["k1"]), _finding_view(row)) for row in rows]


async def finding(db: Queryable, finding_id: str) -> FindingView | None:
    row = await db.fetchrow(
        f"SELECT {_FINDING_COLUMNS} FROM scanner.findings f JOIN scanner.scans s "
        "ON s.id = f.scan_id AND s.deleted_at IS NULL LEFT JOIN scanner.components c "
        "ON c.scan_id = f.scan_id AND c.ref = f.component_ref WHERE f.id = $1",
        finding_id,
    )
    return _finding_view(row) if row else None
