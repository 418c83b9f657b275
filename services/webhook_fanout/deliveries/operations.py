"""What the deliveries API calls: a test delivery, a redelivery, a replay of a time range.

* :func:`send_test` sends a synthetic ``webhook.test`` event (never published on the
  stream) once, through the sender's client, signatures and address checks, and records it
  as a delivery with its one attempt (``succeeded`` on 2xx, ``dead`` otherwise: a test is
  never retried).
* :func:`requeue` starts a new attempt series of a delivery, same id.
* :func:`replay` re-queues a subscription's deliveries of events that occurred in
  ``[since, until)`` and creates the missing ones for the matching events the fan-out holds.
  Limits: only events kept in ``delivery_events`` can be replayed, that is events that
  matched some subscription when they were published (the fan-out does not re-read the
  stream for this); at most ``REPLAY_MAX`` deliveries per call (the reply says how many were
  queued; call again from the last one's time for more); deliveries being sent are left
  alone; the project filter matches the project the event names (not a repo's project).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Final

import asyncpg
import msgspec

from contracts.envelope import Event, OpaquePayload, RawEnvelope
from contracts.ids import new_id
from services.webhook_fanout.deliveries import store
from services.webhook_fanout.deliveries.outcomes import delivery_id
from services.webhook_fanout.deliveries.sender import Sender
from services.webhook_fanout.domain.matching import SubscriptionFilter, matches
from shared.errors import NotFound
from shared.service import Runtime

REPLAY_MAX: Final = 10_000
TEST_EVENT_TYPE: Final = "webhook.test"
SENDER_KEY: Final = "webhook_fanout.sender"
_S = store.S


class WebhookNotFound(NotFound):
    code, title = "webhook_not_found", "Webhook subscription not found"


def sender_of(runtime: Runtime) -> Sender:
    sender: Sender = runtime.state[SENDER_KEY]
    return sender


def _test_envelope(subscription_id: str, now: dt.datetime) -> bytes:
    return msgspec.json.encode(
        {
            "id": new_id(),
            "type": TEST_EVENT_TYPE,
            "schema_version": 1,
            "occurred_at": now,
            "source": "webhook-fanout",
            "aggregate": f"webhook:{subscription_id}",
            "actor": "system",
            "data": {
                "webhook_id": subscription_id,
                "message": "A test delivery from Gatehouse: this receiver is reachable.",
            },
        }
    )


async def send_test(
    runtime: Runtime, subscription_id: str
) -> tuple[int | None, float | None, str | None, uuid.UUID]:
    """Send a ``webhook.test`` event to a subscription now: ``(response status, latency in
    ms, error, delivery id)``. Raises :class:`WebhookNotFound` for an unknown or deleted
    subscription (a disabled one is tested all the same: that is how one checks it)."""
    sender = sender_of(runtime)
    pool = runtime.pool
    row = await pool.fetchrow(
        f"SELECT id, url, format, secret_version, previous_valid_until, revision "
        f"FROM {_S}.subscriptions WHERE id = $1 AND deleted_at IS NULL",
        subscription_id,
    )
    if row is None:
        raise WebhookNotFound(f"no webhook subscription {subscription_id}")
    now = dt.datetime.now(dt.UTC)
    raw = _test_envelope(subscription_id, now)
    envelope = msgspec.json.decode(raw, type=RawEnvelope)
    claimed = store.Claimed(
        id=delivery_id(subscription_id, envelope.id),
        subscription_id=subscription_id,
        event_id=envelope.id,
        stream_seq=0,
        attempts=0,
        attempts_total=0,
        url=row["url"],
        format=row["format"],
        secret_version=int(row["secret_version"]),
        previous_valid_until=row["previous_valid_until"],
        revision=int(row["revision"]),
        envelope=raw,
    )
    attempt = await sender.attempt(claimed, await sender._keys(claimed))
    result = attempt.result
    ok = result.outcome.status is not None and 200 <= result.outcome.status <= 299
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            f"INSERT INTO {_S}.delivery_events (event_id, event_type, stream_seq, occurred_at, "
            "envelope) VALUES ($1, $2, 0, $3, $4)",
            envelope.id,
            TEST_EVENT_TYPE,
            now,
            raw,
        )
        await conn.execute(
            f"INSERT INTO {_S}.deliveries (id, subscription_id, event_id, event_type, "
            "stream_seq, status, attempts, attempts_total, created_at, finished_at) "
            "VALUES ($1, $2, $3, $4, 0, $5, 1, 1, $6, now())",
            claimed.id,
            subscription_id,
            envelope.id,
            TEST_EVENT_TYPE,
            "succeeded" if ok else "dead",
            now,
        )
        await conn.execute(
            f"INSERT INTO {_S}.delivery_attempts (delivery_id, attempt, at, request_headers, "
            "response_status, response_body, response_truncated, latency_ms, error) "
            "VALUES ($1, 1, $2, $3, $4, $5, $6, $7, $8)",
            claimed.id,
            attempt.at,
            attempt.headers,
            result.outcome.status,
            result.body,
            result.truncated,
            result.latency_ms,
            result.error,
        )
    latency = result.latency_ms if result.outcome.status is not None else None
    return result.outcome.status, latency, result.error, claimed.id


async def requeue(conn: asyncpg.Connection, delivery: uuid.UUID) -> dict[str, Any] | None:
    """Send a delivery again: a new attempt series, same delivery id (``store.requeue``).
    Returns ``{id, subscription_id, status}`` or None when there is no such delivery."""
    return await store.requeue(conn, delivery)


async def replay(
    conn: asyncpg.Connection,
    subscription_id: str,
    since: dt.datetime,
    until: dt.datetime | None = None,
) -> int:
    """Queue again every delivery to ``subscription_id`` of events that occurred in
    ``[since, until)`` (see the module for the limits); returns how many were queued.
    Raises :class:`WebhookNotFound` for an unknown or deleted subscription."""
    sub = await conn.fetchrow(
        f"SELECT events, project_id FROM {_S}.subscriptions WHERE id = $1 AND deleted_at IS NULL",
        subscription_id,
    )
    if sub is None:
        raise WebhookNotFound(f"no webhook subscription {subscription_id}")
    subscription = SubscriptionFilter(events=tuple(sub["events"]), project=sub["project_id"])
    end = until or dt.datetime.now(dt.UTC)
    rows = await conn.fetch(
        f"SELECT event_id, event_type, stream_seq, envelope FROM {_S}.delivery_events "
        "WHERE occurred_at >= $1 AND occurred_at < $2 AND stream_seq > 0 "
        "ORDER BY stream_seq LIMIT $3",
        since,
        end,
        REPLAY_MAX,
    )
    wanted: list[tuple[uuid.UUID, str, str, int]] = []
    for row in rows:
        raw = bytes(row["envelope"])
        event = Event(
            envelope=msgspec.json.decode(raw, type=RawEnvelope),
            payload=OpaquePayload(),
            sequence=int(row["stream_seq"]),
            raw=raw,
        )
        if matches(subscription, event):
            wanted.append(
                (
                    delivery_id(subscription_id, row["event_id"]),
                    row["event_id"],
                    row["event_type"],
                    int(row["stream_seq"]),
                )
            )
    if not wanted:
        return 0
    queued = await conn.fetchval(
        f"""
        WITH w AS (
            SELECT * FROM unnest($2::uuid[], $3::text[], $4::text[], $5::bigint[])
            AS w(id, event_id, event_type, stream_seq)
        ), created AS (
            INSERT INTO {_S}.deliveries (id, subscription_id, event_id, event_type, stream_seq,
                created_at)
            SELECT id, $1, event_id, event_type, stream_seq, now() FROM w
            ON CONFLICT DO NOTHING RETURNING id
        ), requeued AS (
            UPDATE {_S}.deliveries d SET status = 'pending', attempts = 0,
                next_attempt_at = NULL, finished_at = NULL
            FROM w WHERE d.id = w.id AND d.status IN ('succeeded', 'dead', 'cancelled')
            RETURNING d.id
        )
        SELECT (SELECT count(*) FROM created) + (SELECT count(*) FROM requeued)
        """,
        subscription_id,
        [w[0] for w in wanted],
        [w[1] for w in wanted],
        [w[2] for w in wanted],
        [w[3] for w in wanted],
    )
    await store.notify(conn)
    return int(queued)
