"""SQL of the mirrors part: the ``mirrors`` projection rows, the fetch jobs and the
fetcher's ``mirror_status`` (operational, written outside any projection)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, TypeAlias

import asyncpg

from contracts.events.signatures import MirrorConfigured

SCHEMA = "signature_verifier"
JOBS_TABLE = "signature_verifier.mirror_jobs"
PROJECTION_TABLES = ("mirrors", "mirror_jobs")

Queryable: TypeAlias = asyncpg.Pool | asyncpg.Connection


@dataclass(frozen=True, kw_only=True)
class MirrorRow:
    repo_key: str
    repo: str
    project_id: str
    clone_url: str
    default_branch: str | None
    credential: str | None
    configured_seq: int

    def same_config(
        self, *, project_id: str, clone_url: str, default_branch: str | None, credential: str | None
    ) -> bool:
        return (self.project_id, self.clone_url, self.default_branch, self.credential) == (
            project_id,
            clone_url,
            default_branch,
            credential,
        )


@dataclass(frozen=True, kw_only=True)
class StatusRow:
    state: str
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    succeeded_at: dt.datetime | None
    last_error: str | None
    progress: dict[str, Any] | None
    resolved_default_branch: str | None
    head: str | None


NEVER_FETCHED = StatusRow(
    state="never_fetched",
    started_at=None,
    finished_at=None,
    succeeded_at=None,
    last_error=None,
    progress=None,
    resolved_default_branch=None,
    head=None,
)


def _mirror(row: asyncpg.Record) -> MirrorRow:
    return MirrorRow(**dict(row))


_MIRROR_COLUMNS = (
    "repo_key, repo, project_id, clone_url, default_branch, credential, configured_seq"
)


async def mirror(db: Queryable, repo_key: str) -> MirrorRow | None:
    row = await db.fetchrow(
        f"SELECT {_MIRROR_COLUMNS} FROM {SCHEMA}.mirrors WHERE repo_key = $1", repo_key
    )
    return _mirror(row) if row else None


async def all_mirror_keys(db: Queryable) -> list[str]:
    return [r["repo_key"] for r in await db.fetch(f"SELECT repo_key FROM {SCHEMA}.mirrors")]


async def upsert_mirror(conn: asyncpg.Connection, payload: MirrorConfigured, *, seq: int) -> None:
    await conn.execute(
        f"INSERT INTO {SCHEMA}.mirrors ({_MIRROR_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) "
        "ON CONFLICT (repo_key) DO UPDATE SET repo = EXCLUDED.repo, "
        "project_id = EXCLUDED.project_id, clone_url = EXCLUDED.clone_url, "
        "default_branch = EXCLUDED.default_branch, credential = EXCLUDED.credential, "
        "configured_seq = EXCLUDED.configured_seq",
        payload.repo.lower(),
        payload.repo,
        payload.project_id,
        payload.clone_url,
        payload.default_branch,
        payload.credential,
        seq,
    )


async def delete_mirror(conn: asyncpg.Connection, repo_key: str, *, seq: int) -> bool:
    """Drop the row and finish the repo's open fetches; True when there was one."""
    deleted = await conn.fetchval(
        f"DELETE FROM {SCHEMA}.mirrors WHERE repo_key = $1 RETURNING true", repo_key
    )
    await conn.execute(
        f"UPDATE {JOBS_TABLE} SET status = 'done', finished_seq = $2, lease_owner = NULL, "
        "lease_until = NULL WHERE payload->>'repo_key' = $1 AND status IN ('pending', 'running')",
        repo_key,
        seq,
    )
    return bool(deleted)


async def has_pending_fetch(db: Queryable, repo_key: str) -> bool:
    """A fetch of the repo is waiting, or claimed and not started yet."""
    return bool(
        await db.fetchval(
            f"SELECT true FROM {JOBS_TABLE} WHERE payload->>'repo_key' = $1 "
            "AND status IN ('pending', 'running') LIMIT 1",
            repo_key,
        )
    )


async def newest_pending_seq(db: Queryable, repo_key: str) -> int | None:
    """The newest fetch of the repo waiting now: a fetch starting now covers it."""
    value = await db.fetchval(
        f"SELECT max(enqueued_seq) FROM {JOBS_TABLE} WHERE payload->>'repo_key' = $1 "
        "AND status = 'pending'",
        repo_key,
    )
    return None if value is None else int(value)


async def complete_covered(db: Queryable, repo_key: str, *, up_to_seq: int) -> int:
    """Pending fetches of the repo queued before a fetch that has just succeeded started:
    that fetch covered them (many pushes, one fetch)."""
    result = await db.execute(
        f"UPDATE {JOBS_TABLE} SET status = 'done' WHERE payload->>'repo_key' = $1 "
        "AND status = 'pending' AND enqueued_seq <= $2",
        repo_key,
        up_to_seq,
    )
    return int(result.split()[-1])


# ---- mirror_status (the fetcher's) ---------------------------------------------------------
async def status(db: Queryable, repo_key: str) -> StatusRow:
    row = await db.fetchrow(
        f"SELECT state, started_at, finished_at, succeeded_at, last_error, progress, "
        f"resolved_default_branch, head FROM {SCHEMA}.mirror_status WHERE repo_key = $1",
        repo_key,
    )
    if row is None:
        return NEVER_FETCHED
    values = dict(row)
    values["progress"] = dict(values["progress"]) if values["progress"] else None
    return StatusRow(**values)


async def fetch_started(db: Queryable, repo_key: str, *, at: dt.datetime) -> None:
    await db.execute(
        f"INSERT INTO {SCHEMA}.mirror_status (repo_key, state, started_at, progress) "
        "VALUES ($1, 'fetching', $2, NULL) ON CONFLICT (repo_key) DO UPDATE SET "
        "state = 'fetching', started_at = $2, progress = NULL",
        repo_key,
        at,
    )


async def fetch_progress(db: Queryable, repo_key: str, progress: dict[str, int]) -> None:
    await db.execute(
        f"UPDATE {SCHEMA}.mirror_status SET progress = $2 WHERE repo_key = $1 "
        "AND state = 'fetching'",
        repo_key,
        progress,
    )


async def fetch_failed(db: Queryable, repo_key: str, *, at: dt.datetime, error: str) -> None:
    await db.execute(
        f"UPDATE {SCHEMA}.mirror_status SET state = 'failed', finished_at = $2, "
        "last_error = $3 WHERE repo_key = $1",
        repo_key,
        at,
        error[:2000],
    )


async def fetch_succeeded(
    db: Queryable,
    repo_key: str,
    *,
    at: dt.datetime,
    branch: str,
    head: str | None,
    progress: dict[str, int] | None,
) -> None:
    await db.execute(
        f"UPDATE {SCHEMA}.mirror_status SET state = 'ok', finished_at = $2, succeeded_at = $2, "
        "last_error = NULL, resolved_default_branch = $3, head = $4, progress = $5 "
        "WHERE repo_key = $1",
        repo_key,
        at,
        branch,
        head,
        progress,
    )


async def forget_status(db: Queryable, repo_key: str) -> None:
    await db.execute(f"DELETE FROM {SCHEMA}.mirror_status WHERE repo_key = $1", repo_key)
