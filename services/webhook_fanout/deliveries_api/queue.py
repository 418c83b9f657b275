"""Putting deliveries back in the queue: ``requeue`` (one delivery, a new attempt series under
the same delivery id) and ``replay`` (every event of a time range again).

These stand in for the delivery engine's functions of the same signatures
(``services/webhook_fanout/deliveries/``), written on this branch before the engine lands:
at the merge the handlers call the engine's and this module goes. The sender learns of new
work from ``NOTIFY webhook_fanout_deliveries`` (payload: the subscription id).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Final

import asyncpg

from contracts.envelope import decode_envelope
from services.webhook_fanout.domain.matching import SubscriptionFilter, matches

NOTIFY_CHANNEL: Final = "webhook_fanout_deliveries"
# Events are read from delivery_events in batches (a range may span millions of rows).
_REPLAY_BATCH: Final = 500


def delivery_id_for(subscription_id: str, event_id: str) -> uuid.UUID:
    """uuid5(subscription id, event id): stable across retries, redeliveries and replays
    (migrations/0002). A subscription id is ``wh_`` + the hex of a UUID."""
    namespace = uuid.UUID(hex=subscription_id.removeprefix("wh_"))
    return uuid.uuid5(namespace, event_id)


async def requeue(conn: asyncpg.Connection, delivery_id: uuid.UUID) -> bool:
    """A new attempt series for the delivery, due now; False when it does not exist."""
    subscription_id = await conn.fetchval(
        """
        UPDATE webhook_fanout.deliveries
        SET status = 'pending', attempts = 0, next_attempt_at = now(), finished_at = NULL,
            lease_owner = NULL, lease_until = NULL
        WHERE id = $1
        RETURNING subscription_id
        """,
        delivery_id,
    )
    if subscription_id is None:
        return False
    await conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, subscription_id)
    return True


async def replay(
    conn: asyncpg.Connection, subscription_id: str, since: dt.datetime, until: dt.datetime
) -> int:
    """Every event that occurred in ``[since, until)`` sent to the subscription again: its
    deliveries of them requeued, and deliveries added for the matching events it never got
    (recorded after it was created). Returns how many deliveries were queued."""
    sub = await conn.fetchrow(
        "SELECT events, project_id, enabled, created_seq FROM webhook_fanout.subscriptions"
        " WHERE id = $1 AND deleted_at IS NULL",
        subscription_id,
    )
    if sub is None:
        return 0
    requeued = await conn.fetch(
        """
        UPDATE webhook_fanout.deliveries d
        SET status = 'pending', attempts = 0, next_attempt_at = now(), finished_at = NULL,
            lease_owner = NULL, lease_until = NULL
        FROM webhook_fanout.delivery_events e
        WHERE d.subscription_id = $1 AND e.event_id = d.event_id
          AND e.occurred_at >= $2 AND e.occurred_at < $3
          -- One being sent now keeps its attempt (two senders would race on it).
          AND NOT (d.status = 'delivering' AND d.lease_until > now())
        RETURNING d.id
        """,
        subscription_id,
        since,
        until,
    )
    wanted = SubscriptionFilter(
        events=tuple(sub["events"]), project=sub["project_id"], enabled=sub["enabled"]
    )
    added = 0
    after_seq = int(sub["created_seq"])
    while True:
        rows = await conn.fetch(
            """
            SELECT e.event_id, e.event_type, e.stream_seq, e.envelope
            FROM webhook_fanout.delivery_events e
            WHERE e.occurred_at >= $2 AND e.occurred_at < $3 AND e.stream_seq > $4
              AND NOT EXISTS (SELECT 1 FROM webhook_fanout.deliveries d
                              WHERE d.subscription_id = $1 AND d.event_id = e.event_id)
            ORDER BY e.stream_seq
            LIMIT $5
            """,
            subscription_id,
            since,
            until,
            after_seq,
            _REPLAY_BATCH,
        )
        if not rows:
            break
        after_seq = int(rows[-1]["stream_seq"])
        for row in rows:
            event = decode_envelope(bytes(row["envelope"]), sequence=int(row["stream_seq"]))
            if not matches(wanted, event):
                continue
            inserted = await conn.fetchval(
                """
                INSERT INTO webhook_fanout.deliveries
                    (id, subscription_id, event_id, event_type, stream_seq, status, attempts,
                     next_attempt_at, created_at)
                VALUES ($1, $2, $3, $4, $5, 'pending', 0, now(), now())
                ON CONFLICT DO NOTHING
                RETURNING true
                """,
                delivery_id_for(subscription_id, row["event_id"]),
                subscription_id,
                row["event_id"],
                row["event_type"],
                row["stream_seq"],
            )
            added += 1 if inserted else 0
    queued = len(requeued) + added
    if queued:
        await conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, subscription_id)
    return queued
