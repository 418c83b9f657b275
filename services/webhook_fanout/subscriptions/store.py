"""SQL of the subscriptions part: the ``subscriptions`` projection rows and the kept
``subscription_secrets`` (written by the command handlers before they publish; never on the
bus, so no replay rebuilds them).

For the deliveries part: :func:`signing_secrets` gives the secrets a delivery is signed with
at a moment, and :func:`subscription` the configuration.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TypeAlias

import asyncpg

from contracts.events.webhooks import WebhookCreated

SCHEMA = "webhook_fanout"
PROJECTION_TABLES = ("subscriptions",)

Queryable: TypeAlias = asyncpg.Pool | asyncpg.Connection


@dataclass(frozen=True, kw_only=True)
class SubscriptionRow:
    id: str
    url: str
    events: list[str]
    project_id: str | None
    description: str
    enabled: bool
    format: str
    disabled_reason: str | None
    secret_version: int
    previous_valid_until: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime
    revision: int
    deleted_at: dt.datetime | None
    created_seq: int


_COLUMNS = (
    "id, url, events, project_id, description, enabled, format, disabled_reason, "
    "secret_version, previous_valid_until, created_at, updated_at, revision, deleted_at, "
    "created_seq"
)


def _row(record: asyncpg.Record) -> SubscriptionRow:
    values = dict(record)
    values["events"] = list(values["events"])
    return SubscriptionRow(**values)


# ---- reads -----------------------------------------------------------------------------------
async def subscription(
    db: Queryable, subscription_id: str, *, with_deleted: bool = False
) -> SubscriptionRow | None:
    row = await db.fetchrow(
        f"SELECT {_COLUMNS} FROM {SCHEMA}.subscriptions WHERE id = $1"
        + ("" if with_deleted else " AND deleted_at IS NULL"),
        subscription_id,
    )
    return _row(row) if row else None


async def list_subscriptions(
    db: Queryable, *, after_seq: int | None, limit: int
) -> list[SubscriptionRow]:
    """Live subscriptions in creation order, strictly after ``after_seq``."""
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM {SCHEMA}.subscriptions WHERE deleted_at IS NULL "
        # Workflow triggers are configured under /api/releases (workflows/).
        "AND workflow_kind IS NULL AND created_seq > $1 ORDER BY created_seq LIMIT $2",
        after_seq if after_seq is not None else -1,
        limit,
    )
    return [_row(r) for r in rows]


# ---- secrets (kept state) ----------------------------------------------------------------------
async def store_secret(
    db: Queryable, subscription_id: str, *, version: int, secret: str, at: dt.datetime
) -> None:
    """Keep a secret version before the event announcing it is published. A version no
    event announced yet (an earlier attempt that failed before publishing) is replaced."""
    await db.execute(
        f"INSERT INTO {SCHEMA}.subscription_secrets (subscription_id, version, secret, "
        "created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (subscription_id, version) DO UPDATE "
        "SET secret = EXCLUDED.secret, created_at = EXCLUDED.created_at",
        subscription_id,
        version,
        secret,
        at,
    )


async def keep_first_secret(
    db: Queryable, subscription_id: str, *, secret: str, at: dt.datetime
) -> None:
    """Version 1 of a new subscription: an earlier attempt of the same command may have kept
    one (and published it): that one stays."""
    await db.execute(
        f"INSERT INTO {SCHEMA}.subscription_secrets (subscription_id, version, secret, "
        "created_at) VALUES ($1, 1, $2, $3) ON CONFLICT (subscription_id, version) DO NOTHING",
        subscription_id,
        secret,
        at,
    )


async def secret(db: Queryable, subscription_id: str, version: int) -> str | None:
    value = await db.fetchval(
        f"SELECT secret FROM {SCHEMA}.subscription_secrets WHERE subscription_id = $1 "
        "AND version = $2",
        subscription_id,
        version,
    )
    return None if value is None else str(value)


async def signing_secrets(db: Queryable, subscription_id: str, now: dt.datetime) -> list[str]:
    """The secrets a delivery of ``subscription_id`` is signed with at ``now``, newest first:
    the current version, and the previous one while the last rotation's grace period lasts
    (``now < previous_valid_until``). Empty for an unknown or deleted subscription.

    Only versions the projection has seen announced count: a version kept by a rotation
    whose event is not applied yet does not sign until it is."""
    rows = await db.fetch(
        f"SELECT s.version, s.secret FROM {SCHEMA}.subscriptions AS sub "
        f"JOIN {SCHEMA}.subscription_secrets AS s ON s.subscription_id = sub.id "
        "WHERE sub.id = $1 AND sub.deleted_at IS NULL AND (s.version = sub.secret_version "
        "OR (s.version = sub.secret_version - 1 AND sub.previous_valid_until > $2)) "
        "ORDER BY s.version DESC",
        subscription_id,
        now,
    )
    return [str(r["secret"]) for r in rows]


# ---- projection writes -------------------------------------------------------------------------
async def insert_subscription(
    conn: asyncpg.Connection, payload: WebhookCreated, *, at: dt.datetime, seq: int
) -> None:
    await conn.execute(
        f"INSERT INTO {SCHEMA}.subscriptions (id, url, events, project_id, description, "
        "enabled, format, disabled_reason, secret_version, previous_valid_until, created_at, "
        "updated_at, revision, deleted_at, created_seq) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8, NULL, $9, $9, 1, NULL, $10) "
        "ON CONFLICT (id) DO NOTHING",
        payload.id,
        payload.url,
        list(payload.events),
        payload.project_id,
        payload.description,
        payload.enabled,
        payload.format,
        payload.secret_version,
        at,
        seq,
    )


_UPDATABLE = frozenset(
    {
        "url",
        "events",
        "project_id",
        "description",
        "enabled",
        "format",
        "disabled_reason",
        "secret_version",
        "previous_valid_until",
        "deleted_at",
    }
)


async def change_subscription(
    conn: asyncpg.Connection,
    subscription_id: str,
    changes: dict[str, object],
    *,
    at: dt.datetime,
) -> None:
    """Set ``changes`` on a live subscription, a new revision at ``at``."""
    unknown = set(changes) - _UPDATABLE
    if unknown:
        raise ValueError(f"not a subscription column: {sorted(unknown)}")
    names = list(changes)
    assignments = ", ".join(f"{name} = ${index + 3}" for index, name in enumerate(names))
    await conn.execute(
        f"UPDATE {SCHEMA}.subscriptions SET {assignments}"
        + (", " if assignments else "")
        + "updated_at = $2, revision = revision + 1 WHERE id = $1 AND deleted_at IS NULL",
        subscription_id,
        at,
        *(changes[name] for name in names),
    )


async def is_workflow_trigger(db: Queryable, subscription_id: str) -> bool:
    """A row the workflows part manages (its deliveries are readable here, not its config)."""
    value = await db.fetchval(
        f"SELECT workflow_kind IS NOT NULL FROM {SCHEMA}.subscriptions WHERE id = $1",
        subscription_id,
    )
    return bool(value)
