"""SQL of the workflow triggers (migrations/0003_workflows.sql): the ``workflow_targets``
projection rows, the managed ``subscriptions`` row each target is delivered through, and the
kept ``workflow_deliveries`` / ``workflow_outcomes`` / ``workflow_secret_shown``."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, Final

import asyncpg

S: Final = "webhook_fanout"
OUTCOMES_CHANNEL: Final = "gatehouse_workflow_outcomes"
# Fixed forever: trigger ids and outcome event ids derive from it.
NAMESPACE: Final = uuid.UUID("9a3f6c1e-2b7d-5e40-8c19-4d6e0f2a7b53")
EVENTS: Final = {"deployment": "deployment.requested", "build": "release.candidate-created"}


def target_id(kind: str, key: str) -> str:
    """The trigger of an environment (``key``: its id) or of a project's build (project id);
    a ``wh_`` id, so its deliveries are read like any subscription's."""
    return "wh_" + uuid.uuid5(NAMESPACE, f"{kind}/{key}").hex


def outcome_event_id(delivery_id: uuid.UUID, series: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"outcome/{delivery_id}/{series}"))


@dataclass(frozen=True, kw_only=True)
class Target:
    id: str
    kind: str
    project_id: str
    environment_id: str | None
    environment: str | None
    url: str | None
    format: str
    ref: str | None
    dispatch_event_type: str | None
    secret_version: int
    previous_valid_until: dt.datetime | None
    updated_at: dt.datetime


_COLUMNS = (
    "id, kind, project_id, environment_id, environment, url, format, ref, dispatch_event_type, "
    "secret_version, previous_valid_until, updated_at"
)


async def target(db: asyncpg.Pool | asyncpg.Connection, target_id_: str) -> Target | None:
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM {S}.workflow_targets WHERE id = $1", target_id_
    )
    return Target(**dict(row)) if row else None


async def environment_target(
    db: asyncpg.Pool | asyncpg.Connection, project_id: str, environment: str
) -> Target | None:
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM {S}.workflow_targets WHERE kind = 'deployment' "
        "AND project_id = $1 AND environment = $2",
        project_id,
        environment,
    )
    return Target(**dict(row)) if row else None


async def upsert_target(
    conn: asyncpg.Connection, *, seq: int, at: dt.datetime, **fields: Any
) -> Target:
    """Insert the target or set ``fields`` on it; then bring its subscription row in line."""
    names = list(fields)
    values = [fields[n] for n in names]
    sets = ", ".join(f"{n} = EXCLUDED.{n}" for n in names if n not in ("id", "kind", "project_id"))
    row = await conn.fetchrow(
        f"INSERT INTO {S}.workflow_targets ({', '.join(names)}, updated_at, created_seq) "
        f"VALUES ({', '.join(f'${i + 1}' for i in range(len(names)))}, ${len(names) + 1}, "
        f"${len(names) + 2}) ON CONFLICT (id) DO UPDATE SET {sets}"
        + (", " if sets else "")
        + f"updated_at = EXCLUDED.updated_at RETURNING {_COLUMNS}, created_seq",
        *values,
        at,
        seq,
    )
    found = dict(row)
    created_seq = found.pop("created_seq")
    target_ = Target(**found)
    await _sync_subscription(conn, target_, created_seq=created_seq)
    return target_


async def _sync_subscription(conn: asyncpg.Connection, t: Target, *, created_seq: int) -> None:
    options = {"ref": t.ref, "event_type": t.dispatch_event_type}
    await conn.execute(
        f"INSERT INTO {S}.subscriptions AS s (id, url, events, project_id, description, enabled, "
        "format, secret_version, previous_valid_until, created_at, updated_at, revision, "
        "created_seq, workflow_kind, workflow_options) VALUES ($1, coalesce($2, ''), "
        "ARRAY[$3], $4, $5, $2 IS NOT NULL, $6, $7, $8, $9, $9, 1, $10, $11, $12) "
        "ON CONFLICT (id) DO UPDATE SET url = EXCLUDED.url, enabled = EXCLUDED.enabled, "
        "format = EXCLUDED.format, secret_version = EXCLUDED.secret_version, "
        "previous_valid_until = EXCLUDED.previous_valid_until, updated_at = EXCLUDED.updated_at, "
        "workflow_options = EXCLUDED.workflow_options, disabled_reason = NULL, "
        "revision = s.revision + 1",
        t.id,
        t.url,
        EVENTS[t.kind],
        t.project_id,
        f"{t.kind} workflow" + (f" of {t.environment}" if t.environment else ""),
        t.format,
        t.secret_version,
        t.previous_valid_until,
        t.updated_at,
        created_seq,
        t.kind,
        options,
    )


# ---- secrets (kept, in subscription_secrets like a subscription's) -------------------------
async def keep_secret(
    db: asyncpg.Pool | asyncpg.Connection,
    target_id_: str,
    *,
    version: int,
    secret: str,
    at: dt.datetime,
    replace: bool,
) -> None:
    await db.execute(
        f"INSERT INTO {S}.subscription_secrets (subscription_id, version, secret, created_at) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT (subscription_id, version) DO "
        + (
            "UPDATE SET secret = EXCLUDED.secret, created_at = EXCLUDED.created_at"
            if replace
            else "NOTHING"
        ),
        target_id_,
        version,
        secret,
        at,
    )


async def shown_version(db: asyncpg.Pool | asyncpg.Connection, target_id_: str) -> int | None:
    value = await db.fetchval(
        f"SELECT version FROM {S}.workflow_secret_shown WHERE id = $1", target_id_
    )
    return None if value is None else int(value)


async def mark_shown(db: asyncpg.Pool | asyncpg.Connection, target_id_: str, version: int) -> None:
    await db.execute(
        f"INSERT INTO {S}.workflow_secret_shown (id, version) VALUES ($1, $2) "
        "ON CONFLICT (id) DO UPDATE SET version = greatest(workflow_secret_shown.version, $2)",
        target_id_,
        version,
    )


# ---- deliveries and outcomes (kept) --------------------------------------------------------
async def remember_delivery(
    conn: asyncpg.Connection,
    *,
    delivery_id: uuid.UUID,
    kind: str,
    project_id: str,
    trigger_event_id: str,
    deployment_id: str | None,
    candidate_id: str | None,
) -> bool:
    """True the first time (ever: a replay finds it and queues nothing again)."""
    inserted = await conn.fetchval(
        f"INSERT INTO {S}.workflow_deliveries (delivery_id, kind, project_id, trigger_event_id, "
        "deployment_id, candidate_id) VALUES ($1, $2, $3, $4, $5, $6) "
        "ON CONFLICT DO NOTHING RETURNING true",
        delivery_id,
        kind,
        project_id,
        trigger_event_id,
        deployment_id,
        candidate_id,
    )
    return bool(inserted)


async def fail_now(conn: asyncpg.Connection, delivery_id: uuid.UUID, error: str) -> None:
    """An outcome without a delivery (nothing to call): failed at once."""
    await conn.execute(
        f"INSERT INTO {S}.workflow_outcomes (delivery_id, series, outcome, error) "
        "VALUES ($1, 0, 'failed', $2) ON CONFLICT DO NOTHING",
        delivery_id,
        error,
    )
    await conn.execute("SELECT pg_notify($1, '')", OUTCOMES_CHANNEL)


@dataclass(frozen=True, kw_only=True)
class Outcome:
    delivery_id: uuid.UUID
    series: int
    outcome: str
    kind: str
    project_id: str
    trigger_event_id: str
    deployment_id: str | None
    candidate_id: str | None
    status: int | None
    error: str | None


async def unpublished(db: asyncpg.Pool | asyncpg.Connection, limit: int = 100) -> list[Outcome]:
    """Outcomes not announced yet, oldest first, with the last attempt's status and error."""
    rows = await db.fetch(
        f"""
        SELECT o.delivery_id, o.series, o.outcome, w.kind, w.project_id, w.trigger_event_id,
               w.deployment_id, w.candidate_id, a.response_status AS status,
               coalesce(o.error, a.error) AS error
        FROM {S}.workflow_outcomes o
        JOIN {S}.workflow_deliveries w ON w.delivery_id = o.delivery_id
        LEFT JOIN LATERAL (
            SELECT response_status, error FROM {S}.delivery_attempts
            WHERE delivery_id = o.delivery_id ORDER BY attempt DESC LIMIT 1
        ) a ON true
        WHERE o.published_at IS NULL ORDER BY o.created_at LIMIT $1
        """,
        limit,
    )
    return [Outcome(**dict(r)) for r in rows]


async def mark_published(
    db: asyncpg.Pool | asyncpg.Connection, delivery_id: uuid.UUID, series: int
) -> None:
    await db.execute(
        f"UPDATE {S}.workflow_outcomes SET published_at = now() "
        "WHERE delivery_id = $1 AND series = $2",
        delivery_id,
        series,
    )
