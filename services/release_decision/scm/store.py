"""The scm read model (``release_decision.scm_*``): SQL in one place."""

from __future__ import annotations

from typing import Any, TypeAlias

import asyncpg
import msgspec

from contracts.events.releases import Blocker, ReleaseDecided
from contracts.events.scm import DecisionPosted, DeliveryReceived, PullRequestUpdated
from services.release_decision.scm.domain.render import PostedDecision, undecided

SCHEMA = "release_decision"
JOBS_TABLE = "release_decision.scm_jobs"
PROJECTION_TABLES = (
    "scm_deliveries",
    "scm_pull_requests",
    "scm_decisions",
    "scm_comments",
    "scm_check_runs",
    "scm_jobs",
)

Queryable: TypeAlias = asyncpg.Pool | asyncpg.Connection


# ---- the projection's writes -----------------------------------------------------------------
async def record_delivery(
    conn: asyncpg.Connection, payload: DeliveryReceived, *, event_id: str, seq: int
) -> None:
    await conn.execute(
        "INSERT INTO release_decision.scm_deliveries (provider, delivery_id, event, action, "
        "repo, outcome, reason, published, received_at, event_id, seq, body_digest) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) "
        "ON CONFLICT (provider, delivery_id) DO NOTHING",
        payload.provider,
        payload.delivery_id,
        payload.event,
        payload.action,
        payload.repo,
        payload.outcome,
        payload.reason,
        payload.published,
        payload.received_at,
        event_id,
        seq,
        payload.body_digest,
    )


async def record_pull_request(
    conn: asyncpg.Connection, payload: PullRequestUpdated, *, seq: int
) -> bool:
    """Record the pull request's state; False (nothing changed) when the provider says this
    change is older than the one recorded (deliveries may arrive out of order)."""
    applied = await conn.fetchval(
        "INSERT INTO release_decision.scm_pull_requests (provider, repo, number, state, "
        "head_sha, head_branch, base_branch, title, url, updated_at, updated_seq, changed_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) "
        "ON CONFLICT (provider, repo, number) DO UPDATE SET state = EXCLUDED.state, "
        "head_sha = EXCLUDED.head_sha, head_branch = EXCLUDED.head_branch, "
        "base_branch = EXCLUDED.base_branch, title = EXCLUDED.title, url = EXCLUDED.url, "
        "updated_at = EXCLUDED.updated_at, updated_seq = EXCLUDED.updated_seq, "
        "changed_at = EXCLUDED.changed_at "
        "WHERE EXCLUDED.changed_at IS NULL OR scm_pull_requests.changed_at IS NULL "
        "OR EXCLUDED.changed_at >= scm_pull_requests.changed_at "
        "RETURNING true",
        payload.provider,
        payload.repo,
        payload.number,
        payload.state,
        payload.head_sha,
        payload.head_branch,
        payload.base_branch,
        payload.title,
        payload.url,
        payload.updated_at,
        seq,
        payload.changed_at,
    )
    return bool(applied)


async def record_decision(
    conn: asyncpg.Connection, payload: ReleaseDecided, *, event_id: str, seq: int
) -> bool:
    """Keep the newest revision; False when this one is older than what is stored."""
    stored = await conn.fetchval(
        "INSERT INTO release_decision.scm_decisions (repo, commit, revision, decision, "
        "blockers, blocker_total, policy_version, evaluated_at, event_id, seq) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
        "ON CONFLICT (repo, commit) DO UPDATE SET revision = EXCLUDED.revision, "
        "decision = EXCLUDED.decision, blockers = EXCLUDED.blockers, "
        "blocker_total = EXCLUDED.blocker_total, policy_version = EXCLUDED.policy_version, "
        "evaluated_at = EXCLUDED.evaluated_at, event_id = EXCLUDED.event_id, seq = EXCLUDED.seq "
        "WHERE scm_decisions.revision < EXCLUDED.revision RETURNING true",
        payload.repo,
        payload.commit,
        payload.revision,
        payload.decision,
        msgspec.to_builtins(payload.blockers),
        max(payload.blocker_total, len(payload.blockers)),
        payload.policy_version,
        payload.evaluated_at,
        event_id,
        seq,
    )
    return bool(stored)


async def record_posted(conn: asyncpg.Connection, payload: DecisionPosted, *, seq: int) -> None:
    if payload.outcome != "posted" or payload.decision is None:
        return
    if payload.check_run_id is not None:
        await conn.execute(
            "INSERT INTO release_decision.scm_check_runs (repo, commit, check_run_id, revision, "
            "decision, posted_at, seq) VALUES ($1, $2, $3, $4, $5, $6, $7) "
            "ON CONFLICT (repo, commit) DO UPDATE SET check_run_id = EXCLUDED.check_run_id, "
            "revision = EXCLUDED.revision, decision = EXCLUDED.decision, "
            "posted_at = EXCLUDED.posted_at, seq = EXCLUDED.seq",
            payload.repo,
            payload.commit,
            payload.check_run_id,
            payload.revision,
            payload.decision,
            payload.posted_at,
            seq,
        )
    if payload.comment_id is not None and payload.number is not None:
        await conn.execute(
            "INSERT INTO release_decision.scm_comments (repo, number, comment_id, commit, "
            "revision, decision, body_digest, posted_at, seq) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
            "ON CONFLICT (repo, number) DO UPDATE SET comment_id = EXCLUDED.comment_id, "
            "commit = EXCLUDED.commit, revision = EXCLUDED.revision, "
            "decision = EXCLUDED.decision, body_digest = EXCLUDED.body_digest, "
            "posted_at = EXCLUDED.posted_at, seq = EXCLUDED.seq",
            payload.repo,
            payload.number,
            payload.comment_id,
            payload.commit,
            payload.revision,
            payload.decision,
            payload.body_digest or "",
            payload.posted_at,
            seq,
        )


async def open_pull_numbers(conn: Queryable, repo: str, commit: str) -> list[int]:
    """Open GitHub pull requests whose head is ``commit``."""
    rows = await conn.fetch(
        "SELECT number FROM release_decision.scm_pull_requests WHERE provider = 'github' "
        "AND repo = $1 AND head_sha = $2 AND state = 'open' ORDER BY number",
        repo,
        commit,
    )
    return [int(row["number"]) for row in rows]


# ---- reads -------------------------------------------------------------------------------------
async def delivery(conn: Queryable, provider: str, delivery_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "SELECT event, action, outcome, reason, published FROM release_decision.scm_deliveries "
        "WHERE provider = $1 AND delivery_id = $2",
        provider,
        delivery_id,
    )
    return dict(row) if row else None


async def delivery_of_body(conn: Queryable, provider: str, digest: str) -> dict[str, Any] | None:
    """The first delivery recorded with this body (its SHA-256), if any."""
    row = await conn.fetchrow(
        "SELECT delivery_id, event, action FROM release_decision.scm_deliveries "
        "WHERE provider = $1 AND body_digest = $2 ORDER BY seq LIMIT 1",
        provider,
        digest,
    )
    return dict(row) if row else None


async def pull_request(conn: Queryable, repo: str, number: int) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "SELECT state, head_sha FROM release_decision.scm_pull_requests "
        "WHERE provider = 'github' AND repo = $1 AND number = $2",
        repo,
        number,
    )
    return dict(row) if row else None


async def decision_of(conn: Queryable, repo: str, commit: str) -> PostedDecision:
    row = await conn.fetchrow(
        "SELECT revision, decision, blockers, blocker_total, policy_version, evaluated_at "
        "FROM release_decision.scm_decisions WHERE repo = $1 AND commit = $2",
        repo,
        commit,
    )
    if row is None:
        return undecided(repo, commit)
    return PostedDecision(
        repo=repo,
        commit=commit,
        decision=row["decision"],
        blockers=tuple(msgspec.convert(row["blockers"], list[Blocker])),
        blocker_total=row["blocker_total"],
        revision=row["revision"],
        policy_version=row["policy_version"],
        evaluated_at=row["evaluated_at"],
    )


async def comment(conn: Queryable, repo: str, number: int) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "SELECT comment_id, body_digest FROM release_decision.scm_comments "
        "WHERE repo = $1 AND number = $2",
        repo,
        number,
    )
    return dict(row) if row else None


async def check_run(conn: Queryable, repo: str, commit: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "SELECT check_run_id, revision, decision FROM release_decision.scm_check_runs "
        "WHERE repo = $1 AND commit = $2",
        repo,
        commit,
    )
    return dict(row) if row else None
