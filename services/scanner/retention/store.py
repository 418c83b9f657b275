"""Retention in PostgreSQL: the policies and deletions the ``retention`` projection writes,
what a plan reads of a repository's artifacts, and the runs (kept state of the scanner:
a run is a job, not an event). Rows become the contract's values here, nowhere else."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import asyncpg

from contracts.events.registry import RetentionDeleted, RetentionPolicy, RetentionPolicySet
from contracts.rpc.retention import (
    RUN_ITEMS_MAX,
    RetentionItem,
    RetentionPolicyView,
    RetentionProtectedItem,
    RetentionRun,
)
from services.scanner.retention.domain import Candidate, Plan

Queryable: TypeAlias = asyncpg.Pool | asyncpg.Connection

PROJECTION_TABLES = ("registry_retention_policies", "registry_retention_deletions")
KEPT_TABLES = (
    "registry_retention_runs",
    "registry_retention_run_items",
    "registry_retention_jobs",
)
JOBS_TABLE = "scanner.registry_retention_jobs"
_POLICY = "scanner.registry_retention_policies"
_DELETION = "scanner.registry_retention_deletions"
_RUN = "scanner.registry_retention_runs"
_ITEM = "scanner.registry_retention_run_items"
_ART = "scanner.registry_artifacts"
_STATS = "scanner.registry_pull_stats"

_POLICY_COLUMNS = (
    "p.id, p.repo_id, p.project_id, p.name, p.pattern, p.keep_last, p.max_age_days, "
    "p.keep_pulled_days, p.enabled, p.created_at, p.created_by, p.updated_at, p.revision, "
    f"(SELECT count(*) FROM {_DELETION} d WHERE d.policy_id = p.id) AS deleted_count"
)


# ---- policies (the projection's side) -----------------------------------------------------------
async def set_policy(
    conn: asyncpg.Connection, payload: RetentionPolicySet, *, at: dt.datetime, actor: str, seq: int
) -> None:
    """Create the policy, or replace its definition (creation time and author stay)."""
    policy = payload.policy
    await conn.execute(
        f"INSERT INTO {_POLICY} (id, repo_id, project_id, name, pattern, keep_last, "
        "max_age_days, keep_pulled_days, enabled, created_at, created_by, created_seq, "
        "updated_at, revision) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $10, "
        "$12) ON CONFLICT (id) DO UPDATE SET name = excluded.name, pattern = excluded.pattern, "
        "keep_last = excluded.keep_last, max_age_days = excluded.max_age_days, "
        "keep_pulled_days = excluded.keep_pulled_days, enabled = excluded.enabled, "
        "updated_at = excluded.updated_at, revision = excluded.revision",
        payload.id,
        payload.repo_id,
        payload.project_id,
        policy.name,
        policy.pattern,
        policy.keep_last,
        policy.max_age_days,
        policy.keep_pulled_days,
        policy.enabled,
        at,
        actor,
        seq,
    )


async def delete_policy(conn: asyncpg.Connection, policy_id: str) -> None:
    await conn.execute(f"DELETE FROM {_POLICY} WHERE id = $1", policy_id)


async def delete_policies_of_repo(conn: asyncpg.Connection, repo_id: str) -> None:
    await conn.execute(f"DELETE FROM {_POLICY} WHERE repo_id = $1", repo_id)


async def record_deletion(
    conn: asyncpg.Connection, payload: RetentionDeleted, *, at: dt.datetime, seq: int
) -> None:
    """One row per artifact retention deleted (a repeated event changes nothing)."""
    await conn.execute(
        f"INSERT INTO {_DELETION} (artifact_id, policy_id, repo_id, digest, path, at, seq) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        payload.artifact_id,
        payload.policy_id,
        payload.repo_id,
        payload.digest,
        payload.path,
        at,
        seq,
    )


# ---- policies (reads) ---------------------------------------------------------------------------
def policy_of(view: RetentionPolicyView) -> RetentionPolicy:
    return RetentionPolicy(
        name=view.name,
        pattern=view.pattern,
        keep_last=view.keep_last,
        max_age_days=view.max_age_days,
        keep_pulled_days=view.keep_pulled_days,
        enabled=view.enabled,
    )


def _view(row: asyncpg.Record) -> RetentionPolicyView:
    fields = dict(row)
    fields.pop("created_seq", None)
    return RetentionPolicyView(**fields)


async def policy_by_id(db: Queryable, policy_id: str) -> RetentionPolicyView | None:
    row = await db.fetchrow(f"SELECT {_POLICY_COLUMNS} FROM {_POLICY} p WHERE p.id = $1", policy_id)
    return _view(row) if row else None


async def policy_named(
    db: Queryable, repo_id: str, name: str, *, other_than: str | None = None
) -> RetentionPolicyView | None:
    """The repository's policy of this name (case-insensitively), other than ``other_than``."""
    row = await db.fetchrow(
        f"SELECT {_POLICY_COLUMNS} FROM {_POLICY} p WHERE p.repo_id = $1 "
        "AND lower(p.name) = lower($2) AND ($3::text IS NULL OR p.id <> $3) LIMIT 1",
        repo_id,
        name,
        other_than,
    )
    return _view(row) if row else None


async def list_policies(
    db: Queryable,
    *,
    repo_id: str | None,
    project_ids: Sequence[str] | None,
    after_seq: int | None,
    limit: int,
) -> list[tuple[RetentionPolicyView, int]]:
    """(policy, created_seq) in creation order."""
    rows = await db.fetch(
        f"SELECT {_POLICY_COLUMNS}, p.created_seq FROM {_POLICY} p "
        "WHERE ($1::text IS NULL OR p.repo_id = $1) "
        "AND ($2::text[] IS NULL OR p.project_id = ANY($2)) "
        "AND ($3::bigint IS NULL OR p.created_seq > $3) ORDER BY p.created_seq LIMIT $4",
        repo_id,
        list(project_ids) if project_ids is not None else None,
        after_seq,
        limit,
    )
    return [(_view(row), int(row["created_seq"])) for row in rows]


async def enabled_policies(db: Queryable) -> list[RetentionPolicyView]:
    rows = await db.fetch(
        f"SELECT {_POLICY_COLUMNS} FROM {_POLICY} p WHERE p.enabled ORDER BY p.created_seq"
    )
    return [_view(row) for row in rows]


# ---- what a plan reads ---------------------------------------------------------------------
_CANDIDATE_SELECT = (
    "SELECT a.id, a.path, a.normalized_name AS name, a.name AS display_name, a.version, "
    "a.digest, a.size, a.uploaded_at, a.uploaded_seq, a.quarantined, "
    "(a.source_artifact_id IS NOT NULL OR EXISTS (SELECT 1 FROM "
    f"{_ART} c WHERE c.source_artifact_id = a.id)) AS promoted, s.last_pulled_at "
    f"FROM {_ART} a LEFT JOIN {_STATS} s ON s.artifact_id = a.id "
)


async def candidates(db: Queryable, repo_id: str) -> list[Candidate]:
    """The repository's live artifacts as retention sees them."""
    rows = await db.fetch(
        _CANDIDATE_SELECT + "WHERE a.repo_id = $1 AND a.deleted_seq IS NULL", repo_id
    )
    return [Candidate(**dict(row)) for row in rows]


async def candidate(db: Queryable, artifact_id: str) -> Candidate | None:
    """One live artifact as retention sees it now (None: deleted meanwhile)."""
    row = await db.fetchrow(
        _CANDIDATE_SELECT + "WHERE a.id = $1 AND a.deleted_seq IS NULL", artifact_id
    )
    return Candidate(**dict(row)) if row else None


async def deleted_by_retention(db: Queryable, artifact_id: str) -> bool:
    return bool(await db.fetchval(f"SELECT 1 FROM {_DELETION} WHERE artifact_id = $1", artifact_id))


# ---- runs (kept state) ------------------------------------------------------------------------
def item_of(d: Any) -> RetentionItem:
    a = d.artifact
    return RetentionItem(
        artifact_id=a.id,
        path=a.path,
        name=a.display_name,
        version=a.version,
        digest=a.digest,
        size=a.size,
        uploaded_at=a.uploaded_at,
        why=d.why,
    )


def protected_of(p: Any) -> RetentionProtectedItem:
    return RetentionProtectedItem(
        artifact_id=p.artifact.id, path=p.artifact.path, guard=p.guard, why=p.why
    )


def dry_run(
    plan: Plan, *, repo_id: str, policy_id: str, requested_by: str, now: dt.datetime
) -> RetentionRun:
    return RetentionRun(
        id=None,
        repo_id=repo_id,
        policy_id=policy_id,
        dry_run=True,
        status="planned",
        trigger="manual",
        total=len(plan.deletions),
        deleted=0,
        skipped=0,
        bytes_freed=plan.bytes_freed,
        items=[item_of(d) for d in plan.deletions[:RUN_ITEMS_MAX]],
        protected=[protected_of(p) for p in plan.protected[:RUN_ITEMS_MAX]],
        truncated=max(len(plan.deletions), len(plan.protected)) > RUN_ITEMS_MAX,
        requested_by=requested_by,
        created_at=now,
        started_at=None,
        finished_at=None,
        error=None,
    )


async def insert_run(
    conn: asyncpg.Connection,
    *,
    run_id: str,
    repo_id: str,
    policy_id: str,
    trigger: str,
    requested_by: str,
    request_id: str,
    now: dt.datetime,
) -> bool:
    """A queued run (an id seen before is left alone); True when it is new."""
    return bool(
        await conn.fetchval(
            f"INSERT INTO {_RUN} (id, repo_id, policy_id, trigger, requested_by, request_id, "
            "created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING "
            "RETURNING true",
            run_id,
            repo_id,
            policy_id,
            trigger,
            requested_by,
            request_id,
            now,
        )
    )


_RUN_COLUMNS = (
    "r.id, r.repo_id, r.policy_id, r.trigger, r.requested_by, r.request_id, "
    "r.total, r.deleted, r.skipped, r.bytes_freed, r.protected_count, r.created_at, "
    "r.started_at, r.finished_at, "
    # A job the worker gave up on (gatehouse jobs list) is a failed run.
    "CASE WHEN j.status IN ('failed', 'dropped') AND r.status IN ('queued', 'running') "
    "THEN 'failed' ELSE r.status END AS status, "
    "coalesce(r.error, CASE WHEN j.status IN ('failed', 'dropped') THEN j.last_error END) "
    "AS error"
)
_RUN_FROM = f"FROM {_RUN} r LEFT JOIN {JOBS_TABLE} j ON j.id = r.id"


@dataclass(frozen=True, kw_only=True)
class RunState:
    """A run's row, as the worker reads it."""

    id: str
    repo_id: str
    policy_id: str
    requested_by: str
    request_id: str
    status: str


async def run_state(db: Queryable, run_id: str) -> RunState | None:
    row = await db.fetchrow(
        f"SELECT id, repo_id, policy_id, requested_by, request_id, status FROM {_RUN} "
        "WHERE id = $1",
        run_id,
    )
    return RunState(**dict(row)) if row else None


async def _run_view(db: Queryable, row: asyncpg.Record) -> RetentionRun:
    deletions = await db.fetch(
        "SELECT artifact_id, path, name, version, digest, size, uploaded_at, why "
        f"FROM {_ITEM} WHERE run_id = $1 AND guard IS NULL ORDER BY position LIMIT $2",
        row["id"],
        RUN_ITEMS_MAX,
    )
    protected = await db.fetch(
        f"SELECT artifact_id, path, guard, why FROM {_ITEM} "
        "WHERE run_id = $1 AND guard IS NOT NULL ORDER BY position LIMIT $2",
        row["id"],
        RUN_ITEMS_MAX,
    )
    return RetentionRun(
        id=row["id"],
        repo_id=row["repo_id"],
        policy_id=row["policy_id"],
        dry_run=False,
        status=row["status"],
        trigger=row["trigger"],
        total=row["total"],
        deleted=row["deleted"],
        skipped=row["skipped"],
        bytes_freed=row["bytes_freed"],
        items=[RetentionItem(**dict(i)) for i in deletions],
        protected=[RetentionProtectedItem(**dict(i)) for i in protected],
        truncated=max(row["total"], row["protected_count"]) > RUN_ITEMS_MAX,
        requested_by=row["requested_by"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        error=row["error"],
    )


async def run_by_id(db: Queryable, run_id: str) -> RetentionRun | None:
    row = await db.fetchrow(f"SELECT {_RUN_COLUMNS} {_RUN_FROM} WHERE r.id = $1", run_id)
    return await _run_view(db, row) if row else None


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def run_key(run: RetentionRun) -> list[str | int]:
    """A run's place in its repository's list (newest first): creation time, then id."""
    micros = (run.created_at - _EPOCH) // dt.timedelta(microseconds=1)
    return [micros, run.id or ""]


async def list_runs(
    db: Queryable, *, repo_id: str, before: tuple[int, str] | None, limit: int
) -> list[RetentionRun]:
    """Runs newest first (after ``before``, a :func:`run_key`)."""
    at, run_id = (None, None)
    if before is not None:
        at, run_id = _EPOCH + dt.timedelta(microseconds=before[0]), before[1]
    rows = await db.fetch(
        f"SELECT {_RUN_COLUMNS} {_RUN_FROM} WHERE r.repo_id = $1 "
        "AND ($2::timestamptz IS NULL OR (r.created_at, r.id) < ($2, $3::text)) "
        "ORDER BY r.created_at DESC, r.id DESC LIMIT $4",
        repo_id,
        at,
        run_id,
        limit,
    )
    return [await _run_view(db, row) for row in rows]


async def open_run_of_policy(db: Queryable, policy_id: str) -> bool:
    return bool(
        await db.fetchval(
            f"SELECT 1 FROM {_RUN} WHERE policy_id = $1 AND status IN ('queued', 'running') "
            "LIMIT 1",
            policy_id,
        )
    )


async def start_run(conn: asyncpg.Connection, run_id: str, plan: Plan, *, now: dt.datetime) -> None:
    """Store the plan a run works through (deletions first, by position, then what the
    guards keep) and mark it running."""
    entries = [(d.artifact, d.why, None) for d in plan.deletions] + [
        (p.artifact, p.why, p.guard) for p in plan.protected
    ]
    rows: list[tuple[Any, ...]] = [
        (
            run_id,
            position,
            a.id,
            a.path,
            a.display_name,
            a.version,
            a.digest,
            a.size,
            a.uploaded_at,
            why,
            guard,
            None,
        )
        for position, (a, why, guard) in enumerate(entries)
    ]
    async with conn.transaction():
        await conn.execute(f"DELETE FROM {_ITEM} WHERE run_id = $1", run_id)
        if rows:
            await conn.copy_records_to_table(
                "registry_retention_run_items", schema_name="scanner", records=rows
            )
        await conn.execute(
            f"UPDATE {_RUN} SET status = 'running', total = $2, protected_count = $3, "
            "started_at = $4, deleted = 0, skipped = 0, bytes_freed = 0 WHERE id = $1",
            run_id,
            len(plan.deletions),
            len(plan.protected),
            now,
        )


@dataclass(frozen=True, kw_only=True)
class PendingItem:
    position: int
    artifact_id: str
    path: str
    digest: str
    size: int
    why: str


async def pending_items(db: Queryable, run_id: str) -> list[PendingItem]:
    """The deletions of a run whose turn has not come yet, in order."""
    rows = await db.fetch(
        f"SELECT position, artifact_id, path, digest, size, why FROM {_ITEM} "
        "WHERE run_id = $1 AND guard IS NULL AND outcome IS NULL ORDER BY position",
        run_id,
    )
    return [PendingItem(**dict(row)) for row in rows]


async def record_outcome(db: Queryable, run_id: str, item: PendingItem, *, deleted: bool) -> None:
    """One item done: its outcome and the run's progress, together."""
    await db.execute(
        f"WITH item AS (UPDATE {_ITEM} SET outcome = $3 WHERE run_id = $1 AND position = $2 "
        "AND outcome IS NULL RETURNING 1) "
        f"UPDATE {_RUN} SET deleted = deleted + CASE WHEN $4 THEN 1 ELSE 0 END, "
        "skipped = skipped + CASE WHEN $4 THEN 0 ELSE 1 END, "
        "bytes_freed = bytes_freed + CASE WHEN $4 THEN $5::bigint ELSE 0 END "
        "WHERE id = $1 AND EXISTS (SELECT 1 FROM item)",
        run_id,
        item.position,
        "deleted" if deleted else "skipped",
        deleted,
        item.size,
    )


async def finish_run(
    db: Queryable, run_id: str, *, now: dt.datetime, error: str | None = None
) -> None:
    await db.execute(
        f"UPDATE {_RUN} SET status = $2, finished_at = $3, error = $4 WHERE id = $1",
        run_id,
        "failed" if error else "done",
        now,
        error,
    )
