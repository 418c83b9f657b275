"""What the deliveries API calls: a test delivery, a redelivery, a replay of a time range.

* :func:`send_test` sends a synthetic ``webhook.test`` event (never published on the
  stream) once, through the sender's client, signatures and address checks, and records it
  as a delivery with its one attempt (``succeeded`` on 2xx, ``cancelled`` otherwise: a test
  is never retried, and is no dead letter).
* :func:`requeue` starts a new attempt series of a delivery, same id, due now.
* :func:`replay` re-queues a subscription's deliveries of events that occurred in
  ``[since, until)`` and creates the missing ones for the matching events the fan-out holds
  that were published after the subscription was created. Limits: only events kept in
  ``delivery_events`` can be replayed, that is events that matched some subscription when
  they were published (the fan-out does not re-read the stream for this); at most
  ``REPLAY_MAX`` events of the range are read per call (call again from the last one's time
  for more); deliveries being sent are left alone; a repo-only event matches a project
  filter by the projects that list its repo now.
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
from services.webhook_fanout.domain.errors import WebhookNotFound
from services.webhook_fanout.domain.matching import SubscriptionFilter, matches
from services.webhook_fanout.projects import store as projects_store
from services.webhook_fanout.subscriptions import store as subscriptions_store
from shared.service import Runtime

__all__ = ["REPLAY_MAX", "WebhookNotFound", "replay", "requeue", "send_test"]

REPLAY_MAX: Final = 10_000
TEST_EVENT_TYPE: Final = "webhook.test"
SENDER_KEY: Final = "webhook_fanout.sender"
_S = store.S


def sender_of(runtime: Runtime) -> Sender:
    sender: Sender = runtime.state[SENDER_KEY]
    return sender


def _test_envelope(
    subscription_id: str, now: dt.datetime, *, actor: str, correlation_id: str | None
) -> bytes:
    return msgspec.json.encode(
        {
            "id": new_id(),
            "type": TEST_EVENT_TYPE,
            "schema_version": 1,
            "occurred_at": now,
            "source": "webhook-fanout",
            "aggregate": f"webhook:{subscription_id}",
            "actor": actor,
            "correlation_id": correlation_id,
            "data": {
                "id": subscription_id,
                "message": "A test delivery from Gatehouse: this receiver is reachable.",
            },
        }
    )


async def send_test(
    runtime: Runtime,
    subscription_id: str,
    *,
    actor: str = "system",
    correlation_id: str | None = None,
) -> tuple[int | None, float | None, str | None, uuid.UUID]:
    """Send a ``webhook.test`` event to a subscription now: ``(response status, latency in
    ms, error, delivery id)``. Raises :class:`WebhookNotFound` for an unknown or deleted
    subscription (a disabled one is tested all the same: that is how one checks it)."""
    sender = sender_of(runtime)
    pool = runtime.pool
    row = await subscriptions_store.subscription(pool, subscription_id)
    if row is None:
        raise WebhookNotFound(f"no webhook subscription {subscription_id}")
    now = dt.datetime.now(dt.UTC)
    raw = _test_envelope(subscription_id, now, actor=actor, correlation_id=correlation_id)
    envelope = msgspec.json.decode(raw, type=RawEnvelope)
    claimed = store.Claimed(
        id=delivery_id(subscription_id, envelope.id),
        subscription_id=subscription_id,
        event_id=envelope.id,
        stream_seq=0,
        attempts=0,
        attempts_total=0,
        url=row.url,
        format=row.format,  # type: ignore[arg-type]
        secret_version=row.secret_version,
        previous_valid_until=row.previous_valid_until,
        revision=row.revision,
        envelope=raw,
    )
    attempt = await sender.attempt(claimed, await sender.signing_keys(claimed))
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
            "succeeded" if ok else "cancelled",
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
    ``[since, until)`` (see the module for the limits): the ones it has (finished or not,
    unless being sent now) start a new attempt series due now, and matching events it never
    got are queued. Returns how many deliveries were queued. Raises
    :class:`WebhookNotFound` for an unknown or deleted subscription."""
    sub = await subscriptions_store.subscription(conn, subscription_id)
    if sub is None:
        raise WebhookNotFound(f"no webhook subscription {subscription_id}")
    subscription = SubscriptionFilter(events=tuple(sub.events), project=sub.project_id)
    end = until or dt.datetime.now(dt.UTC)
    requeued = await conn.fetchval(
        f"""
        WITH requeued AS (
            UPDATE {_S}.deliveries d SET status = 'pending', attempts = 0,
                next_attempt_at = now(), finished_at = NULL
            FROM {_S}.delivery_events e
            WHERE d.subscription_id = $1 AND e.event_id = d.event_id AND d.stream_seq > 0
              AND e.occurred_at >= $2 AND e.occurred_at < $3
              -- One being sent now keeps its attempt (two senders would race on it).
              AND NOT {store.IN_FLIGHT}
            RETURNING 1
        ) SELECT count(*) FROM requeued
        """,
        subscription_id,
        since,
        end,
    )
    rows = await conn.fetch(
        f"SELECT e.event_id, e.event_type, e.stream_seq, e.envelope FROM {_S}.delivery_events e "
        "WHERE e.occurred_at >= $2 AND e.occurred_at < $3 AND e.stream_seq > $4 "
        f"AND NOT EXISTS (SELECT 1 FROM {_S}.deliveries d "
        "WHERE d.subscription_id = $1 AND d.event_id = e.event_id) "
        "ORDER BY e.stream_seq LIMIT $5",
        subscription_id,
        since,
        end,
        sub.created_seq,
        REPLAY_MAX,
    )
    events = [_event(row) for row in rows]
    repo_projects = (
        await projects_store.projects_of_events(conn, events) if subscription.project else {}
    )
    wanted = [
        (delivery_id(subscription_id, event.id), event)
        for event in events
        if matches(subscription, event, repo_project=repo_projects.get(event.id))
    ]
    created = 0
    if wanted:
        created = await conn.fetchval(
            f"""
            WITH created AS (
                INSERT INTO {_S}.deliveries (id, subscription_id, event_id, event_type,
                    stream_seq, created_at)
                SELECT w.id, $1, w.event_id, w.event_type, w.stream_seq, now()
                FROM unnest($2::uuid[], $3::text[], $4::text[], $5::bigint[])
                    AS w(id, event_id, event_type, stream_seq)
                ON CONFLICT DO NOTHING RETURNING 1
            ) SELECT count(*) FROM created
            """,
            subscription_id,
            [w[0] for w in wanted],
            [w[1].id for w in wanted],
            [w[1].envelope.type for w in wanted],
            [w[1].sequence for w in wanted],
        )
    queued = int(requeued) + int(created)
    if queued:
        await store.notify(conn)
    return queued


def _event(row: asyncpg.Record) -> Event:
    raw = bytes(row["envelope"])
    return Event(
        envelope=msgspec.json.decode(raw, type=RawEnvelope),
        payload=OpaquePayload(),
        sequence=int(row["stream_seq"]),
        raw=raw,
    )
