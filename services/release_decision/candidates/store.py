"""The candidates read model in PostgreSQL: what the ``candidates`` projection writes and
what the handlers read. Rows become views here, nowhere else."""

from __future__ import annotations

import datetime as dt
from typing import Any, TypeAlias

import asyncpg
import msgspec

from contracts.events.deployments import (
    DeploymentGate,
    DeploymentRequested,
    DeploymentStatusChanged,
    EnvironmentUpdated,
    ReleaseCandidateCreated,
    ReleaseCreated,
)
from contracts.rpc.release_candidates import (
    CandidateView,
    DeploymentView,
    EnvironmentView,
    ReleaseView,
)
from services.release_decision.candidates.domain.deployments import DeploymentState

Queryable: TypeAlias = asyncpg.Pool | asyncpg.Connection

SCHEMA = "release_decision"
JOBS_TABLE = "release_decision.workflow_jobs"
PROJECTION_TABLES = (
    "workflow_jobs",
    "deployment_statuses",
    "deployments",
    "environments",
    "release_candidates",
    "releases",
)


# ---- writes (the projection) ----------------------------------------------------------------
async def insert_release(
    conn: asyncpg.Connection, p: ReleaseCreated, *, at: dt.datetime, actor: str, seq: int
) -> None:
    await conn.execute(
        "INSERT INTO release_decision.releases (id, project_id, version, created_at, "
        "created_by, created_seq) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        p.release_id,
        p.project_id,
        p.version,
        at,
        actor,
        seq,
    )


async def insert_candidate(
    conn: asyncpg.Connection,
    p: ReleaseCandidateCreated,
    *,
    at: dt.datetime,
    actor: str,
    seq: int,
) -> None:
    await conn.execute(
        "INSERT INTO release_decision.release_candidates (id, release_id, project_id, version, "
        "release_version, rc_number, repo, commit, trigger_build_workflow, created_at, "
        "created_by, created_seq, build_status) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, "
        "$10, $11, $12, CASE WHEN $9 THEN 'requested' ELSE 'not_requested' END) "
        "ON CONFLICT DO NOTHING",
        p.release_candidate_id,
        p.release_id,
        p.project_id,
        p.version,
        p.release_version,
        p.rc_number,
        p.repo,
        p.commit,
        p.trigger_build_workflow,
        at,
        actor,
        seq,
    )


async def upsert_environment(
    conn: asyncpg.Connection, p: EnvironmentUpdated, *, at: dt.datetime, actor: str, seq: int
) -> None:
    await conn.execute(
        "INSERT INTO release_decision.environments AS e (id, project_id, name, protected, "
        "workflow_url, version, created_at, created_by, updated_at, updated_by, updated_seq) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $7, $8, $9) "
        "ON CONFLICT (id) DO UPDATE SET protected = EXCLUDED.protected, "
        "workflow_url = EXCLUDED.workflow_url, version = EXCLUDED.version, "
        "updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by, "
        "updated_seq = EXCLUDED.updated_seq WHERE e.version < EXCLUDED.version",
        p.environment_id,
        p.project_id,
        p.name,
        p.protected,
        p.workflow_url,
        p.version,
        at,
        actor,
        seq,
    )


async def insert_requested(
    conn: asyncpg.Connection, p: DeploymentRequested, *, at: dt.datetime, actor: str, seq: int
) -> None:
    inserted = await conn.fetchval(
        "INSERT INTO release_decision.deployments (id, project_id, environment_id, environment, "
        "release_candidate_id, release_candidate_version, release_version, repo, commit, "
        "status, workflow_url, protected, gate, requested, created_at, created_by, created_seq, "
        "updated_at, updated_by, updated_seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, "
        "'pending', $10, $11, $12, true, $13, $14, $15, $13, $14, $15) "
        "ON CONFLICT DO NOTHING RETURNING true",
        p.deployment_id,
        p.project_id,
        p.environment_id,
        p.environment,
        p.release_candidate_id,
        p.release_candidate_version,
        p.release_version,
        p.repo,
        p.commit,
        p.workflow_url,
        p.protected,
        None if p.gate is None else msgspec.to_builtins(p.gate),
        at,
        actor,
        seq,
    )
    if inserted:
        await _history(conn, p.deployment_id, "pending", None, "requested", None, at, actor, seq)


async def apply_status(
    conn: asyncpg.Connection,
    p: DeploymentStatusChanged,
    *,
    at: dt.datetime,
    actor: str,
    seq: int,
) -> None:
    if p.previous_status is None:
        # Created by this report: environment and candidate as the event names them.
        await conn.execute(
            "INSERT INTO release_decision.deployments (id, project_id, environment_id, "
            "environment, release_candidate_id, release_candidate_version, release_version, "
            "repo, commit, status, workflow_url, protected, gate, requested, created_at, "
            "created_by, created_seq, updated_at, updated_by, updated_seq) "
            "SELECT $1, $2, $3, $4, c.id, c.version, c.release_version, $5, $6, $7, "
            "e.workflow_url, e.protected, NULL, false, $8, $9, $10, $8, $9, $10 "
            "FROM release_decision.release_candidates c, release_decision.environments e "
            "WHERE c.id = $11 AND e.id = $3 ON CONFLICT DO NOTHING",
            p.deployment_id,
            p.project_id,
            p.environment_id,
            p.environment,
            p.repo,
            p.commit,
            p.status,
            at,
            actor,
            seq,
            p.release_candidate_id,
        )
    else:
        await conn.execute(
            "UPDATE release_decision.deployments SET status = $2, updated_at = $3, "
            "updated_by = $4, updated_seq = $5 WHERE id = $1 AND updated_seq < $5",
            p.deployment_id,
            p.status,
            at,
            actor,
            seq,
        )
    await _history(
        conn, p.deployment_id, p.status, p.previous_status, p.cause, p.superseded_by, at, actor, seq
    )


async def _history(
    conn: asyncpg.Connection,
    deployment_id: str,
    status: str,
    previous: str | None,
    cause: str,
    superseded_by: str | None,
    at: dt.datetime,
    actor: str,
    seq: int,
) -> None:
    await conn.execute(
        "INSERT INTO release_decision.deployment_statuses (deployment_id, seq, status, "
        "previous_status, cause, superseded_by, at, actor) "
        "SELECT $1, $2, $3, $4, $5, $6, $7, $8 "
        "WHERE EXISTS (SELECT 1 FROM release_decision.deployments WHERE id = $1) "
        "ON CONFLICT DO NOTHING",
        deployment_id,
        seq,
        status,
        previous,
        cause,
        superseded_by,
        at,
        actor,
    )


async def set_build_status(conn: asyncpg.Connection, candidate_id: str, status: str) -> None:
    await conn.execute(
        "UPDATE release_decision.release_candidates SET build_status = $2 WHERE id = $1",
        candidate_id,
        status,
    )


async def deployment_status(conn: asyncpg.Connection, deployment_id: str) -> str | None:
    value = await conn.fetchval(
        "SELECT status FROM release_decision.deployments WHERE id = $1", deployment_id
    )
    return None if value is None else str(value)


# ---- reads ----------------------------------------------------------------------------------
_CANDIDATE_COLUMNS = (
    "id, project_id, version, release_id, release_version, rc_number, repo, commit, "
    "trigger_build_workflow, build_status, created_at, created_by"
)


def _candidate(row: asyncpg.Record) -> CandidateView:
    return CandidateView(**dict(row))


async def candidate(db: Queryable, project_id: str, version: str) -> CandidateView | None:
    row = await db.fetchrow(
        f"SELECT {_CANDIDATE_COLUMNS} FROM release_decision.release_candidates "
        "WHERE project_id = $1 AND version = $2",
        project_id,
        version,
    )
    return _candidate(row) if row else None


async def candidate_numbered(
    db: Queryable, release_id: str, rc_number: int
) -> CandidateView | None:
    """Candidate ``rc_number`` of the release, whatever its spelling (``-rc1``, ``-rc01``)."""
    row = await db.fetchrow(
        f"SELECT {_CANDIDATE_COLUMNS} FROM release_decision.release_candidates "
        "WHERE release_id = $1 AND rc_number = $2 ORDER BY created_seq LIMIT 1",
        release_id,
        rc_number,
    )
    return _candidate(row) if row else None


async def candidates_of(db: Queryable, release_id: str) -> list[CandidateView]:
    rows = await db.fetch(
        f"SELECT {_CANDIDATE_COLUMNS} FROM release_decision.release_candidates "
        "WHERE release_id = $1 ORDER BY rc_number, created_seq",
        release_id,
    )
    return [_candidate(row) for row in rows]


class ReleaseRow(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    project_id: str
    version: str
    created_at: dt.datetime
    created_by: str
    created_seq: int
    candidate_count: int


_RELEASE_SELECT = (
    "SELECT r.id, r.project_id, r.version, r.created_at, r.created_by, r.created_seq, "
    "(SELECT count(*) FROM release_decision.release_candidates c WHERE c.release_id = r.id) "
    "AS candidate_count FROM release_decision.releases r"
)


async def release(db: Queryable, project_id: str, version: str) -> ReleaseRow | None:
    row = await db.fetchrow(
        f"{_RELEASE_SELECT} WHERE r.project_id = $1 AND r.version = $2", project_id, version
    )
    return ReleaseRow(**dict(row)) if row else None


async def releases(
    db: Queryable, project_id: str, *, before_seq: int | None, limit: int
) -> list[ReleaseRow]:
    """Newest first (by the stream sequence of their creation)."""
    rows = await db.fetch(
        f"{_RELEASE_SELECT} WHERE r.project_id = $1 "
        "AND ($2::bigint IS NULL OR r.created_seq < $2) ORDER BY r.created_seq DESC LIMIT $3",
        project_id,
        before_seq,
        limit,
    )
    return [ReleaseRow(**dict(row)) for row in rows]


async def latest_candidates(db: Queryable, release_ids: list[str]) -> dict[str, CandidateView]:
    rows = await db.fetch(
        f"SELECT DISTINCT ON (release_id) {_CANDIDATE_COLUMNS} "
        "FROM release_decision.release_candidates WHERE release_id = ANY($1::text[]) "
        "ORDER BY release_id, rc_number DESC, created_seq DESC",
        release_ids,
    )
    return {row["release_id"]: _candidate(row) for row in rows}


def release_view(
    row: ReleaseRow, *, latest: CandidateView | None, candidates: list[CandidateView] | None
) -> ReleaseView:
    return ReleaseView(
        id=row.id,
        project_id=row.project_id,
        version=row.version,
        created_at=row.created_at,
        created_by=row.created_by,
        candidate_count=row.candidate_count,
        latest_candidate=latest,
        candidates=candidates,
    )


_ENVIRONMENT_SELECT = (
    "SELECT e.id, e.project_id, e.name, e.protected, e.workflow_url, e.version, e.created_at, "
    "e.created_by, e.updated_at, e.updated_by, a.id AS active_deployment_id, "
    "a.release_candidate_version AS active_release_candidate_version "
    "FROM release_decision.environments e LEFT JOIN LATERAL (SELECT d.id, "
    "d.release_candidate_version FROM release_decision.deployments d "
    "WHERE d.environment_id = e.id AND d.status = 'success' "
    "ORDER BY d.created_seq DESC LIMIT 1) a ON true"
)


async def environment(db: Queryable, project_id: str, name: str) -> EnvironmentView | None:
    row = await db.fetchrow(
        f"{_ENVIRONMENT_SELECT} WHERE e.project_id = $1 AND e.name = $2", project_id, name
    )
    return EnvironmentView(**dict(row)) if row else None


async def environments(db: Queryable, project_id: str) -> list[EnvironmentView]:
    rows = await db.fetch(
        f"{_ENVIRONMENT_SELECT} WHERE e.project_id = $1 ORDER BY e.name", project_id
    )
    return [EnvironmentView(**dict(row)) for row in rows]


_DEPLOYMENT_COLUMNS = (
    "id, project_id, environment_id, environment, release_candidate_id, "
    "release_candidate_version, release_version, repo, commit, status, workflow_url, "
    "protected, gate, requested, created_at, created_by, updated_at, updated_by"
)


def _deployment(row: asyncpg.Record) -> DeploymentView:
    values: dict[str, Any] = dict(row)
    values.pop("created_seq", None)
    gate = values.pop("gate")
    return DeploymentView(
        **values, gate=None if gate is None else msgspec.convert(gate, DeploymentGate)
    )


async def deployment(db: Queryable, deployment_id: str) -> DeploymentView | None:
    row = await db.fetchrow(
        f"SELECT {_DEPLOYMENT_COLUMNS} FROM release_decision.deployments WHERE id = $1",
        deployment_id,
    )
    return _deployment(row) if row else None


async def deployments(
    db: Queryable,
    environment_id: str,
    *,
    statuses: list[str] | None,
    candidate_version: str | None,
    before_seq: int | None,
    limit: int,
) -> list[tuple[DeploymentView, int]]:
    """Newest first; each with its creation sequence (the cursor key)."""
    rows = await db.fetch(
        f"SELECT {_DEPLOYMENT_COLUMNS}, created_seq FROM release_decision.deployments "
        "WHERE environment_id = $1 AND ($2::text[] IS NULL OR status = ANY($2::text[])) "
        "AND ($3::text IS NULL OR release_candidate_version = $3) "
        "AND ($4::bigint IS NULL OR created_seq < $4) ORDER BY created_seq DESC LIMIT $5",
        environment_id,
        statuses,
        candidate_version,
        before_seq,
        limit,
    )
    return [(_deployment(row), int(row["created_seq"])) for row in rows]


async def latest_deployment_of(
    db: Queryable, environment_id: str, candidate_id: str
) -> DeploymentState | None:
    row = await db.fetchrow(
        "SELECT id, status, created_seq FROM release_decision.deployments "
        "WHERE environment_id = $1 AND release_candidate_id = $2 "
        "ORDER BY created_seq DESC LIMIT 1",
        environment_id,
        candidate_id,
    )
    if row is None:
        return None
    return DeploymentState(id=row["id"], status=row["status"], order=row["created_seq"])


async def live_deployments(db: Queryable, environment_id: str) -> list[DeploymentState]:
    """The environment's deployments a success could supersede (those in ``success``)."""
    rows = await db.fetch(
        "SELECT id, status, created_seq FROM release_decision.deployments "
        "WHERE environment_id = $1 AND status = 'success' ORDER BY created_seq",
        environment_id,
    )
    return [DeploymentState(id=r["id"], status=r["status"], order=r["created_seq"]) for r in rows]
