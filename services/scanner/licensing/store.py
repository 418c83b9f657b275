"""The licensing read model in PostgreSQL: what the licensing projection writes, and the
reads of the handlers, the scan-time policy source and the re-evaluation job. Rows become
values here, nowhere else."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, TypeAlias

import asyncpg
import msgspec

from contracts.events.licensing import (
    LicensePolicyDocument,
    LicenseWaiverExpired,
    LicenseWaiverGranted,
    LicenseWaiverRevoked,
    PolicyChanged,
    ScanRelicensed,
)
from services.scanner.domain.licenses import Waiver
from services.scanner.licensing.policy import ORG_SCOPE, PolicyContext, scope_of

Queryable: TypeAlias = asyncpg.Pool | asyncpg.Connection

JOBS_TABLE = "scanner.license_jobs"
PROJECTION_TABLES = (
    "license_policies",
    "license_policy_versions",
    "license_waivers",
    "license_scans",
    "license_jobs",
)


def _document(value: Any) -> LicensePolicyDocument | None:
    return None if value is None else msgspec.convert(value, LicensePolicyDocument)


def _json(document: LicensePolicyDocument | None) -> Any:
    return None if document is None else msgspec.to_builtins(document)


# ---- policies -------------------------------------------------------------------------------
class PolicyRow(msgspec.Struct, frozen=True, kw_only=True):
    scope: str
    project_id: str | None
    version: int
    document: LicensePolicyDocument | None
    updated_at: dt.datetime
    updated_by: str
    updated_seq: int


async def policy_row(db: Queryable, scope: str) -> PolicyRow | None:
    row = await db.fetchrow(
        "SELECT scope, project_id, version, document, updated_at, updated_by, updated_seq "
        "FROM scanner.license_policies WHERE scope = $1",
        scope,
    )
    if row is None:
        return None
    return PolicyRow(**{**dict(row), "document": _document(row["document"])})


async def apply_policy_changed(
    conn: asyncpg.Connection, payload: PolicyChanged, *, at: dt.datetime, actor: str, seq: int
) -> bool:
    """Store a new version of a policy; False for a version already held (a repeat)."""
    scope = scope_of(payload.project_id if payload.scope == "project" else None)
    applied = await conn.fetchval(
        "INSERT INTO scanner.license_policies AS p (scope, project_id, version, document, "
        "updated_at, updated_by, updated_seq) VALUES ($1, $2, $3, $4, $5, $6, $7) "
        "ON CONFLICT (scope) DO UPDATE SET version = EXCLUDED.version, "
        "document = EXCLUDED.document, updated_at = EXCLUDED.updated_at, "
        "updated_by = EXCLUDED.updated_by, updated_seq = EXCLUDED.updated_seq "
        "WHERE p.version < EXCLUDED.version RETURNING true",
        scope,
        payload.project_id if payload.scope == "project" else None,
        payload.version,
        _json(payload.document),
        at,
        actor,
        seq,
    )
    if not applied:
        return False
    await conn.execute(
        "INSERT INTO scanner.license_policy_versions (scope, version, document, at, actor, seq) "
        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        scope,
        payload.version,
        _json(payload.document),
        at,
        actor,
        seq,
    )
    return True


async def policy_version(db: Queryable, scope: str, version: int) -> LicensePolicyDocument | None:
    """The document of one version (None: version 0, or an override removed)."""
    if version <= 0:
        return None
    value = await db.fetchval(
        "SELECT document FROM scanner.license_policy_versions WHERE scope = $1 AND version = $2",
        scope,
        version,
    )
    return _document(value)


# ---- waivers --------------------------------------------------------------------------------
class WaiverRow(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    project_id: str
    license: str
    purl: str | None
    reason: str
    expires_at: dt.datetime
    granted_at: dt.datetime
    granted_by: str
    granted_seq: int
    revoked_at: dt.datetime | None
    revoked_by: str | None
    revoke_reason: str | None
    revoked_seq: int | None
    expired_seq: int | None

    def status(self, now: dt.datetime) -> str:
        if self.revoked_seq is not None:
            return "revoked"
        if self.expired_seq is not None or self.expires_at <= now:
            return "expired"
        return "active"

    def waiver(self) -> Waiver:
        return Waiver(
            id=self.id,
            license=self.license,
            reason=self.reason,
            purl=self.purl,
            expires_at=self.expires_at,
        )


_WAIVER_COLUMNS = (
    "id, project_id, license, purl, reason, expires_at, granted_at, granted_by, granted_seq, "
    "revoked_at, revoked_by, revoke_reason, revoked_seq, expired_seq"
)


def _waiver(row: asyncpg.Record) -> WaiverRow:
    return WaiverRow(**dict(row))


async def waiver_row(db: Queryable, waiver_id: str) -> WaiverRow | None:
    row = await db.fetchrow(
        f"SELECT {_WAIVER_COLUMNS} FROM scanner.license_waivers WHERE id = $1", waiver_id
    )
    return _waiver(row) if row else None


async def insert_waiver(
    conn: asyncpg.Connection,
    payload: LicenseWaiverGranted,
    *,
    at: dt.datetime,
    actor: str,
    seq: int,
) -> bool:
    inserted = await conn.fetchval(
        "INSERT INTO scanner.license_waivers (id, project_id, license, purl, reason, "
        "expires_at, granted_at, granted_by, granted_seq) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING RETURNING true",
        payload.waiver_id,
        payload.project_id,
        payload.license,
        payload.purl,
        payload.reason,
        payload.expires_at,
        at,
        actor,
        seq,
    )
    return bool(inserted)


async def revoke_waiver(
    conn: asyncpg.Connection,
    payload: LicenseWaiverRevoked,
    *,
    at: dt.datetime,
    actor: str,
    seq: int,
) -> bool:
    """False when the waiver is unknown or already ended."""
    updated = await conn.fetchval(
        "UPDATE scanner.license_waivers SET revoked_at = $2, revoked_by = $3, "
        "revoke_reason = $4, revoked_seq = $5 "
        "WHERE id = $1 AND revoked_seq IS NULL AND expired_seq IS NULL RETURNING true",
        payload.waiver_id,
        at,
        actor,
        payload.revoke_reason,
        seq,
    )
    return bool(updated)


async def expire_waiver(
    conn: asyncpg.Connection, payload: LicenseWaiverExpired, *, seq: int
) -> bool:
    updated = await conn.fetchval(
        "UPDATE scanner.license_waivers SET expired_seq = $2 "
        "WHERE id = $1 AND revoked_seq IS NULL AND expired_seq IS NULL RETURNING true",
        payload.waiver_id,
        seq,
    )
    return bool(updated)


async def active_waivers(db: Queryable, project_id: str, *, at: dt.datetime) -> list[WaiverRow]:
    """Waivers of the project in force at ``at`` (neither revoked nor past their expiry)."""
    rows = await db.fetch(
        f"SELECT {_WAIVER_COLUMNS} FROM scanner.license_waivers WHERE project_id = $1 "
        "AND revoked_seq IS NULL AND expired_seq IS NULL AND expires_at > $2 ORDER BY id",
        project_id,
        at,
    )
    return [_waiver(row) for row in rows]


async def waivers_by_id(db: Queryable, ids: Sequence[str]) -> list[WaiverRow]:
    if not ids:
        return []
    rows = await db.fetch(
        f"SELECT {_WAIVER_COLUMNS} FROM scanner.license_waivers WHERE id = ANY($1::text[]) "
        "ORDER BY id",
        list(ids),
    )
    return [_waiver(row) for row in rows]


async def list_waivers(
    db: Queryable,
    project_id: str,
    *,
    statuses: Sequence[str] | None,
    now: dt.datetime,
    after: int | None,
    limit: int,
) -> list[WaiverRow]:
    """Newest first (by the stream sequence of the grant); up to ``limit`` rows."""
    # $2 (now) is typed here: a filter on "revoked" alone does not otherwise use it, and
    # PostgreSQL cannot prepare a statement with a parameter of unknown type.
    clauses = ["project_id = $1", "$2::timestamptz IS NOT NULL"]
    args: list[Any] = [project_id, now]
    if statuses:
        wanted = []
        if "revoked" in statuses:
            wanted.append("revoked_seq IS NOT NULL")
        if "expired" in statuses:
            wanted.append("(revoked_seq IS NULL AND (expired_seq IS NOT NULL OR expires_at <= $2))")
        if "active" in statuses:
            wanted.append("(revoked_seq IS NULL AND expired_seq IS NULL AND expires_at > $2)")
        clauses.append("(" + " OR ".join(wanted) + ")")
    if after is not None:
        args.append(after)
        clauses.append(f"granted_seq < ${len(args)}")
    args.append(limit)
    rows = await db.fetch(
        f"SELECT {_WAIVER_COLUMNS} FROM scanner.license_waivers WHERE {' AND '.join(clauses)} "
        f"ORDER BY granted_seq DESC LIMIT ${len(args)}",
        *args,
    )
    return [_waiver(row) for row in rows]


async def due_waivers(db: Queryable, *, now: dt.datetime, limit: int = 500) -> list[WaiverRow]:
    """Waivers past their expiry whose end has not been announced yet."""
    rows = await db.fetch(
        f"SELECT {_WAIVER_COLUMNS} FROM scanner.license_waivers WHERE revoked_seq IS NULL "
        "AND expired_seq IS NULL AND expires_at <= $1 ORDER BY expires_at, id LIMIT $2",
        now,
        limit,
    )
    return [_waiver(row) for row in rows]


async def next_expiry(db: Queryable) -> dt.datetime | None:
    value: dt.datetime | None = await db.fetchval(
        "SELECT min(expires_at) FROM scanner.license_waivers "
        "WHERE revoked_seq IS NULL AND expired_seq IS NULL"
    )
    return value


# ---- the policy in force --------------------------------------------------------------------
async def current_context(db: Queryable, project_id: str, *, now: dt.datetime) -> PolicyContext:
    """The policy that classifies the project's components now."""
    org = await policy_row(db, ORG_SCOPE)
    project = await policy_row(db, scope_of(project_id))
    waivers = await active_waivers(db, project_id, at=now)
    return PolicyContext(
        org_version=org.version if org else 0,
        org_document=org.document if org else None,
        project_version=project.version if project else 0,
        project_document=project.document if project else None,
        waivers=tuple(w.waiver() for w in waivers),
        now=now,
    )


async def context_at(
    db: Queryable,
    project_id: str,
    *,
    org_version: int,
    project_version: int,
    project_override: bool,
    waiver_ids: Sequence[str],
    now: dt.datetime,
) -> PolicyContext:
    """The policy as it was when a snapshot was evaluated (by the versions it recorded)."""
    org = await policy_version(db, ORG_SCOPE, org_version)
    project = (
        await policy_version(db, scope_of(project_id), project_version)
        if project_override
        else None
    )
    waivers = await waivers_by_id(db, waiver_ids)
    return PolicyContext(
        org_version=org_version,
        org_document=org,
        project_version=project_version,
        project_document=project,
        waivers=tuple(w.waiver() for w in waivers),
        now=now,
    )


async def last_change_seq(db: Queryable, project_id: str) -> int:
    """The stream sequence of the last event that changed what classifies the project."""
    value = await db.fetchval(
        "SELECT GREATEST("
        "(SELECT max(updated_seq) FROM scanner.license_policies WHERE scope = ANY($1::text[])), "
        "(SELECT max(GREATEST(granted_seq, COALESCE(revoked_seq, 0), COALESCE(expired_seq, 0))) "
        "FROM scanner.license_waivers WHERE project_id = $2))",
        [ORG_SCOPE, scope_of(project_id)],
        project_id,
    )
    return int(value or 0)


# ---- snapshots ------------------------------------------------------------------------------
class LicenseScanRow(msgspec.Struct, frozen=True, kw_only=True):
    scan_id: str
    project_id: str
    queued_seq: int
    completed_seq: int | None
    deleted: bool
    evaluation_source: str | None
    org_policy_version: int | None
    project_policy_version: int | None
    project_override: bool | None
    waiver_ids: list[str] | None
    evaluated_at: dt.datetime | None
    evaluated_seq: int | None
    relicense_digest: str | None


async def license_scan(db: Queryable, scan_id: str) -> LicenseScanRow | None:
    row = await db.fetchrow(
        "SELECT scan_id, project_id, queued_seq, completed_seq, deleted, evaluation_source, "
        "org_policy_version, project_policy_version, project_override, waiver_ids, "
        "evaluated_at, evaluated_seq, relicense_digest FROM scanner.license_scans "
        "WHERE scan_id = $1",
        scan_id,
    )
    if row is None:
        return None
    values = dict(row)
    values["waiver_ids"] = list(row["waiver_ids"]) if row["waiver_ids"] is not None else None
    return LicenseScanRow(**values)


async def scan_queued(conn: asyncpg.Connection, scan_id: str, project_id: str, *, seq: int) -> None:
    await conn.execute(
        "INSERT INTO scanner.license_scans (scan_id, project_id, queued_seq) "
        "VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        scan_id,
        project_id,
        seq,
    )


async def scan_completed(
    conn: asyncpg.Connection,
    scan_id: str,
    project_id: str,
    *,
    context: PolicyContext,
    seq: int,
) -> int:
    """Record the snapshot with the policy in force as it completed; returns the stream
    sequence its scan was queued at (the scan read the policy after that)."""
    queued: int | None = await conn.fetchval(
        "INSERT INTO scanner.license_scans AS s (scan_id, project_id, queued_seq, completed_seq, "
        "evaluation_source, org_policy_version, project_policy_version, project_override, "
        "waiver_ids, evaluated_at, evaluated_seq) "
        "VALUES ($1, $2, 0, $3, 'scan', $4, $5, $6, $7, $8, $3) "
        "ON CONFLICT (scan_id) DO UPDATE SET completed_seq = EXCLUDED.completed_seq, "
        "evaluation_source = EXCLUDED.evaluation_source, "
        "org_policy_version = EXCLUDED.org_policy_version, "
        "project_policy_version = EXCLUDED.project_policy_version, "
        "project_override = EXCLUDED.project_override, waiver_ids = EXCLUDED.waiver_ids, "
        "evaluated_at = EXCLUDED.evaluated_at, evaluated_seq = EXCLUDED.evaluated_seq "
        "WHERE s.completed_seq IS NULL AND NOT s.deleted RETURNING s.queued_seq",
        scan_id,
        project_id,
        seq,
        context.org_version,
        context.project_version,
        context.project_override,
        context.waiver_ids,
        context.now,
    )
    return -1 if queued is None else queued


async def scan_deleted(conn: asyncpg.Connection, scan_id: str) -> None:
    await conn.execute(
        "UPDATE scanner.license_scans SET deleted = true WHERE scan_id = $1", scan_id
    )


async def record_relicensed(conn: asyncpg.Connection, payload: ScanRelicensed, *, seq: int) -> None:
    await conn.execute(
        "UPDATE scanner.license_scans SET evaluation_source = 'relicensed', "
        "org_policy_version = $2, project_policy_version = $3, project_override = $4, "
        "waiver_ids = $5, evaluated_at = $6, evaluated_seq = $7, relicense_digest = $8 "
        "WHERE scan_id = $1 AND completed_seq IS NOT NULL AND NOT deleted",
        payload.scan_id,
        payload.org_policy_version,
        payload.project_policy_version,
        payload.project_override,
        sorted(payload.waiver_ids),
        payload.evaluated_at,
        seq,
        payload.result_digest,
    )


async def latest_snapshots(
    conn: Queryable, *, project_id: str | None = None
) -> list[tuple[str, str]]:
    """(project id, scan id) of the latest snapshot of every project (or of one)."""
    rows = await conn.fetch(
        "SELECT DISTINCT ON (project_id) project_id, scan_id FROM scanner.license_scans "
        "WHERE completed_seq IS NOT NULL AND NOT deleted "
        "AND ($1::text IS NULL OR project_id = $1) ORDER BY project_id, completed_seq DESC",
        project_id,
    )
    return [(row["project_id"], row["scan_id"]) for row in rows]


async def open_jobs_of_scan(conn: asyncpg.Connection, scan_id: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT id FROM scanner.license_jobs WHERE status <> 'done' AND payload->>'scan_id' = $1",
        scan_id,
    )
    return [row["id"] for row in rows]
