"""SQL of the deliveries (migrations/0002_deliveries.sql). Every statement that the sender
runs per batch handles many deliveries at once (arrays in, one round trip).

Reads ``subscriptions`` (written by the subscriptions part) without writing it; the
secrets come from ``subscriptions.store.signing_secrets``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import asyncpg

from services.webhook_fanout.deliveries.outcomes import HealthChange
from services.webhook_fanout.domain.formats import WebhookFormat

S: Final = "webhook_fanout"
# The sender LISTENs here; the intake, requeue and replay NOTIFY when deliveries are due.
CHANNEL: Final = "gatehouse_webhook_deliveries"
# Not finished. ('delivering' was the state of a claimed delivery before senders leased
# subscriptions, migration 0005; it stays in the list because the partial indexes name it.)
OPEN: Final = "('pending', 'delivering', 'retrying')"


async def notify(conn: asyncpg.Connection) -> None:
    await conn.execute("SELECT pg_notify($1, '')", CHANNEL)


# ---- intake --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LiveSubscription:
    id: str
    events: tuple[str, ...]
    project_id: str | None
    created_seq: int


_LIVE = (
    f"SELECT s.id, s.events, s.project_id, s.created_seq FROM {S}.subscriptions s "
    f"LEFT JOIN {S}.subscription_health h ON h.subscription_id = s.id "
    "WHERE s.enabled AND s.deleted_at IS NULL "
    "AND (h.disabled_revision IS NULL OR h.disabled_revision <> s.revision) "
    # Workflow triggers get only the events the workflows projection queues for them.
    "AND s.workflow_kind IS NULL"
)


async def intake_state(conn: asyncpg.Connection) -> tuple[int, list[LiveSubscription]]:
    """The intake's high water and the subscriptions that receive events now (enabled, not
    deleted, not disabled by the sender at their current revision), in one round trip: the
    intake runs per batch of a busy stream, and its round trips are the deliveries' latency."""
    rows = await conn.fetch(
        f"SELECT w.high_water, l.* FROM (SELECT coalesce(max(high_water), 0) AS high_water "
        f"FROM {S}.delivery_intake) w LEFT JOIN ({_LIVE}) l ON true"
    )
    mark = int(rows[0]["high_water"]) if rows else 0
    return mark, _live(r for r in rows if r["id"] is not None)


def _live(rows: Iterable[asyncpg.Record]) -> list[LiveSubscription]:
    return [
        LiveSubscription(
            id=r["id"],
            events=tuple(r["events"]),
            project_id=r["project_id"],
            created_seq=int(r["created_seq"]),
        )
        for r in rows
    ]


_RAISE_HIGH_WATER = (
    f"INSERT INTO {S}.delivery_intake (singleton, high_water) VALUES (true, $1) "
    "ON CONFLICT (singleton) DO UPDATE SET high_water = "
    "greatest(delivery_intake.high_water, EXCLUDED.high_water)"
)


async def raise_high_water(conn: asyncpg.Connection, sequence: int) -> None:
    await conn.execute(_RAISE_HIGH_WATER, sequence)


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    event_id: str
    event_type: str
    stream_seq: int
    occurred_at: dt.datetime
    envelope: bytes


async def queue(
    conn: asyncpg.Connection,
    events: Sequence[QueuedEvent],
    deliveries: Sequence[tuple[uuid.UUID, str, QueuedEvent]],
    *,
    high_water: int | None = None,
) -> int:
    """Store events and their deliveries (each once: a repeat changes nothing) and raise the
    intake's high water to ``high_water`` (if given), in one statement (one round trip);
    returns how many deliveries are new, having woken the senders for them."""
    if not deliveries:
        if high_water is not None:
            await raise_high_water(conn, high_water)
        return 0
    # One statement: the deliveries' foreign key to their events is checked at its end.
    inserted = await conn.fetchval(
        f"""
        WITH queued_events AS (
            INSERT INTO {S}.delivery_events (event_id, event_type, stream_seq, occurred_at,
                envelope)
            SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::timestamptz[],
                $5::bytea[])
            ON CONFLICT (event_id) DO NOTHING
        ), new AS (
            INSERT INTO {S}.deliveries (id, subscription_id, event_id, event_type, stream_seq,
                created_at)
            SELECT *, now() FROM unnest($6::uuid[], $7::text[], $8::text[], $9::text[],
                $10::bigint[])
            ON CONFLICT DO NOTHING RETURNING 1
        ), mark AS (
            INSERT INTO {S}.delivery_intake (singleton, high_water)
            SELECT true, $11::bigint WHERE $11::bigint IS NOT NULL
            ON CONFLICT (singleton) DO UPDATE SET high_water =
                greatest(delivery_intake.high_water, EXCLUDED.high_water)
        ), counted AS (SELECT count(*) AS n FROM new)
        SELECT n, CASE WHEN n > 0 THEN pg_notify($12, '') END FROM counted
        """,
        [e.event_id for e in events],
        [e.event_type for e in events],
        [e.stream_seq for e in events],
        [e.occurred_at for e in events],
        [e.envelope for e in events],
        [d for d, _, _ in deliveries],
        [s for _, s, _ in deliveries],
        [e.event_id for _, _, e in deliveries],
        [e.event_type for _, _, e in deliveries],
        [e.stream_seq for _, _, e in deliveries],
        high_water,
        CHANNEL,
    )
    return int(inserted)


async def cancel_open(conn: asyncpg.Connection, subscription_id: str, *, before_seq: int) -> int:
    """Cancel what is still to be sent to a subscription that was deleted or disabled
    (redeliverable by requeue or replay): events of the stream before ``before_seq``."""
    result = await conn.execute(
        f"UPDATE {S}.deliveries SET status = 'cancelled', finished_at = now(), "
        "next_attempt_at = NULL "
        f"WHERE subscription_id = $1 AND status IN {OPEN} AND stream_seq < $2",
        subscription_id,
        before_seq,
    )
    return int(result.split()[-1])


# ---- the sender ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery leased to a sender, with what sending it needs (no further lookup)."""

    id: uuid.UUID
    subscription_id: str
    event_id: str
    stream_seq: int
    attempts: int
    attempts_total: int
    url: str
    format: WebhookFormat
    secret_version: int
    previous_valid_until: dt.datetime | None
    revision: int
    envelope: bytes
    # A workflow trigger's dispatch options (workflows/): {"ref": …, "event_type": …}.
    workflow_options: dict[str, Any] | None = None


_CLAIM = f"""
WITH heads AS (
    -- Subscriptions whose oldest open delivery is due, and that no live lease holds.
    SELECT s.id FROM {S}.subscriptions s
    LEFT JOIN {S}.subscription_health h ON h.subscription_id = s.id
    LEFT JOIN {S}.subscription_leases l ON l.subscription_id = s.id
    CROSS JOIN LATERAL (
        SELECT d.next_attempt_at FROM {S}.deliveries d
        WHERE d.subscription_id = s.id AND d.status IN {OPEN}
        ORDER BY d.stream_seq LIMIT 1
    ) head
    WHERE s.enabled AND s.deleted_at IS NULL AND s.id <> ALL($3::text[])
      AND (h.disabled_revision IS NULL OR h.disabled_revision <> s.revision)
      AND (head.next_attempt_at IS NULL OR head.next_attempt_at <= now())
      AND (l.until IS NULL OR l.until < now())
    LIMIT $4
), runs AS (
    -- Each one's run: its oldest open deliveries, up to the first one not due yet.
    SELECT heads.id, min(x.stream_seq) AS first_seq, max(x.stream_seq) AS last_seq
    FROM heads CROSS JOIN LATERAL (
        SELECT d.stream_seq,
               bool_and(d.next_attempt_at IS NULL OR d.next_attempt_at <= now())
                   OVER (ORDER BY d.stream_seq) AS due
        FROM (
            SELECT stream_seq, next_attempt_at FROM {S}.deliveries
            WHERE subscription_id = heads.id AND status IN {OPEN}
            ORDER BY stream_seq LIMIT $5
        ) d
    ) x
    WHERE x.due
    GROUP BY heads.id
), leased AS (
    -- Another sender that leased one of them since this statement's snapshot keeps it.
    INSERT INTO {S}.subscription_leases AS l (subscription_id, owner, until, first_seq, last_seq)
    SELECT id, $1, now() + make_interval(secs => $2), first_seq, last_seq FROM runs
    ON CONFLICT (subscription_id) DO UPDATE SET owner = EXCLUDED.owner, until = EXCLUDED.until,
        first_seq = EXCLUDED.first_seq, last_seq = EXCLUDED.last_seq
    WHERE l.until < now()
    RETURNING l.subscription_id, l.first_seq, l.last_seq
)
SELECT d.id, d.subscription_id, d.event_id, d.stream_seq, d.attempts, d.attempts_total,
       s.url, s.format, s.secret_version, s.previous_valid_until, s.revision, e.envelope,
       s.workflow_options
FROM leased
JOIN {S}.deliveries d ON d.subscription_id = leased.subscription_id
    AND d.stream_seq BETWEEN leased.first_seq AND leased.last_seq AND d.status IN {OPEN}
JOIN {S}.subscriptions s ON s.id = d.subscription_id
JOIN {S}.delivery_events e ON e.event_id = d.event_id
"""


async def claim(
    conn: asyncpg.Connection,
    *,
    owner: str,
    lease_seconds: float,
    busy: Sequence[str],
    subscriptions: int,
    run_length: int,
) -> list[Claimed]:
    """Lease up to ``subscriptions`` subscriptions not in ``busy`` whose queue's head is due
    (``subscription_leases``), and return the run of each: its oldest open delivery and the
    due ones right behind it, at most ``run_length``, sorted in stream order per
    subscription. Nothing is written to the deliveries themselves."""
    rows = await conn.fetch(_CLAIM, owner, lease_seconds, list(busy), subscriptions, run_length)
    claimed = [
        Claimed(
            id=r["id"],
            subscription_id=r["subscription_id"],
            event_id=r["event_id"],
            stream_seq=int(r["stream_seq"]),
            attempts=int(r["attempts"]),
            attempts_total=int(r["attempts_total"]),
            url=r["url"],
            format=r["format"],
            secret_version=int(r["secret_version"]),
            previous_valid_until=r["previous_valid_until"],
            revision=int(r["revision"]),
            envelope=bytes(r["envelope"]),
            workflow_options=r["workflow_options"],
        )
        for r in rows
    ]
    claimed.sort(key=lambda c: (c.subscription_id, c.stream_seq))
    return claimed


@dataclass(frozen=True, slots=True)
class Finished:
    """One attempt as the sender records it, and the state it leaves the delivery in."""

    id: uuid.UUID
    attempt: int  # within the series (the schedule's)
    attempt_total: int  # across series (the attempt's number in the log)
    at: dt.datetime
    headers: dict[str, str]
    status: int | None
    body: str | None
    truncated: bool
    latency_ms: float
    error: str | None
    state: str
    next_attempt_at: dt.datetime | None
    subscription_id: str


async def finish(
    conn: asyncpg.Connection,
    *,
    owner: str,
    finished: Sequence[Finished],
    released: Sequence[str],
    health: Sequence[HealthChange],
) -> dict[str, dt.datetime | None]:
    """Record attempts, move their deliveries on and end the leases of their subscriptions
    (only where ``owner`` still holds the lease: a sender whose lease was taken over records
    its attempt and changes nothing else; a delivery cancelled meanwhile stays cancelled),
    end the leases of ``released`` subscriptions (runs that sent nothing) and update health.
    Returns each subscription's ``failing_since`` after the change. One statement (atomic,
    one round trip: the sender runs it between every two claims)."""
    rows = await conn.fetch(
        f"""
        WITH r AS (
            SELECT * FROM unnest($2::uuid[], $3::int[], $4::int[], $5::timestamptz[],
                $6::jsonb[], $7::int[], $8::text[], $9::bool[], $10::float8[], $11::text[],
                $12::text[], $13::timestamptz[], $14::text[])
            AS r(id, attempt, total, at, headers, status, body, truncated, latency,
                 error, state, next_at, subscription_id)
        ), held AS (
            DELETE FROM {S}.subscription_leases
            WHERE owner = $1 AND subscription_id IN (
                SELECT subscription_id FROM r UNION SELECT unnest($15::text[]))
            RETURNING subscription_id
        ), recorded AS (
            INSERT INTO {S}.delivery_attempts (delivery_id, attempt, at, request_headers,
                response_status, response_body, response_truncated, latency_ms, error)
            SELECT id, total, at, headers, status, body, truncated, latency, error FROM r
            ON CONFLICT DO NOTHING
        ), moved AS (
            UPDATE {S}.deliveries d SET status = r.state, attempts = r.attempt,
                attempts_total = greatest(d.attempts_total, r.total), next_attempt_at = r.next_at,
                finished_at = CASE WHEN r.state IN ('succeeded', 'dead') THEN r.at END
            FROM r WHERE d.id = r.id AND d.status IN {OPEN}
              AND r.subscription_id IN (SELECT subscription_id FROM held)
        )
        INSERT INTO {S}.subscription_health AS h (subscription_id, last_success_at,
            last_failure_at, failing_since)
        SELECT * FROM unnest($16::text[], $17::timestamptz[], $18::timestamptz[],
            $19::timestamptz[])
        ON CONFLICT (subscription_id) DO UPDATE SET
            last_success_at = coalesce(EXCLUDED.last_success_at, h.last_success_at),
            last_failure_at = coalesce(EXCLUDED.last_failure_at, h.last_failure_at),
            failing_since = CASE WHEN EXCLUDED.last_success_at IS NOT NULL
                THEN EXCLUDED.failing_since ELSE coalesce(h.failing_since, EXCLUDED.failing_since)
                END
        RETURNING subscription_id, failing_since
        """,
        owner,
        [f.id for f in finished],
        [f.attempt for f in finished],
        [f.attempt_total for f in finished],
        [f.at for f in finished],
        [f.headers for f in finished],
        [f.status for f in finished],
        [f.body for f in finished],
        [f.truncated for f in finished],
        [f.latency_ms for f in finished],
        [f.error for f in finished],
        [f.state for f in finished],
        [f.next_attempt_at for f in finished],
        [f.subscription_id for f in finished],
        list(released),
        [h.subscription_id for h in health],
        [h.last_success_at for h in health],
        [h.last_failure_at for h in health],
        [h.failing_since for h in health],
    )
    return {r["subscription_id"]: r["failing_since"] for r in rows}


async def renew(
    conn: asyncpg.Connection, *, owner: str, lease_seconds: float, subscriptions: Sequence[str]
) -> None:
    await conn.execute(
        f"UPDATE {S}.subscription_leases SET until = now() + make_interval(secs => $2) "
        "WHERE owner = $1 AND subscription_id = ANY($3::text[])",
        owner,
        lease_seconds,
        list(subscriptions),
    )


async def next_due(conn: asyncpg.Connection | asyncpg.Pool, *, owner: str) -> dt.datetime | None:
    """When the next retry is due or another sender's lease runs out (None: neither)."""
    value: dt.datetime | None = await conn.fetchval(
        "SELECT least("
        f"(SELECT min(next_attempt_at) FROM {S}.deliveries WHERE status IN {OPEN}), "
        f"(SELECT min(until) FROM {S}.subscription_leases WHERE owner <> $1))",
        owner,
    )
    return value


# A delivery being sent right now: open, in the leased stretch of its subscription's queue.
IN_FLIGHT: Final = (
    f"(d.status IN {OPEN} AND EXISTS (SELECT 1 FROM {S}.subscription_leases l "
    "WHERE l.subscription_id = d.subscription_id AND l.until > now() "
    "AND d.stream_seq BETWEEN l.first_seq AND l.last_seq))"
)


async def disable_locally(conn: asyncpg.Connection, subscription_id: str, *, revision: int) -> int:
    """The sender disabled a subscription (410, or failing too long): nothing more is sent
    or queued to it until it changes; what was still to be sent is cancelled."""
    await conn.execute(
        f"INSERT INTO {S}.subscription_health AS h (subscription_id, disabled_revision) "
        "VALUES ($1, $2) ON CONFLICT (subscription_id) DO UPDATE SET disabled_revision = $2",
        subscription_id,
        revision,
    )
    return await cancel_open(conn, subscription_id, before_seq=2**62)


# ---- redelivery ----------------------------------------------------------------------------
async def requeue(conn: asyncpg.Connection, delivery_id: uuid.UUID) -> dict[str, Any] | None:
    """A new attempt series for a finished delivery (same id), due now and sent in stream
    order before the subscription's later deliveries; a delivery waiting for a retry is
    tried now. Not for one being sent (``IN_FLIGHT``: the deliveries API answers 409). None
    when there is no such delivery."""
    row = await conn.fetchrow(
        f"UPDATE {S}.deliveries SET "
        "status = CASE WHEN status IN ('succeeded', 'dead', 'cancelled') THEN 'pending' "
        "ELSE status END, "
        "attempts = CASE WHEN status IN ('succeeded', 'dead', 'cancelled') THEN 0 "
        "ELSE attempts END, "
        "next_attempt_at = now(), finished_at = NULL "
        "WHERE id = $1 RETURNING id, subscription_id, status",
        delivery_id,
    )
    if row is None:
        return None
    await notify(conn)
    return dict(row)
