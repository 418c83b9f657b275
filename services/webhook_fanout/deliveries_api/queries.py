"""The reads of the delivery log: a subscription's deliveries (newest first, filtered by
status and event type, cursor-paged) and one delivery with its attempts.

A reply travels as one NATS message (1 MiB by default), and an attempt may hold 64 KiB of
response body: a list shows each delivery's latest attempts with their bodies cut short and
stops a page early when it would outgrow ``PAGE_BUDGET_BYTES``; one delivery shows its latest
``GET_ATTEMPTS_MAX`` attempts in full.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Final

import asyncpg
import msgspec

from contracts.rpc.webhooks import (
    AttemptView,
    DeliveriesListRequest,
    DeliveryPage,
    DeliveryView,
)
from services.webhook_fanout.deliveries.store import IN_FLIGHT
from shared.pagination import InvalidCursor, decode_cursor, encode_cursor

LIST_ATTEMPTS_MAX: Final = 5
LIST_BODY_CHARS: Final = 1024
GET_ATTEMPTS_MAX: Final = 10
PAGE_BUDGET_BYTES: Final = 512 * 1024
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

# A delivery of the stretch its subscription's sender has leased is being sent right now.
_STATUS = f"CASE WHEN {IN_FLIGHT} THEN 'delivering' ELSE d.status END"
_DELIVERY_COLUMNS = f"""
    d.id, d.subscription_id, d.event_id, d.event_type, {_STATUS} AS status, d.created_at,
    d.next_attempt_at,
    (extract(epoch FROM d.created_at) * 1000000)::bigint AS created_us
"""


def _micros(created_us: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=created_us)


async def list_deliveries(conn: asyncpg.Connection, request: DeliveriesListRequest) -> DeliveryPage:
    after: tuple[Any, ...] | None = None
    if request.cursor is not None:
        created_us, last_id = decode_cursor(request.cursor, kinds=(int, str))
        try:
            after = (_micros(int(created_us)), uuid.UUID(str(last_id)))
        except (ValueError, OverflowError):
            raise InvalidCursor("the cursor belongs to another list") from None
    rows = await conn.fetch(
        f"""
        SELECT {_DELIVERY_COLUMNS}
        FROM webhook_fanout.deliveries d
        WHERE d.subscription_id = $1
          AND ($2::text IS NULL OR {_STATUS} = $2)
          AND ($3::text IS NULL OR d.event_type = $3)
          AND ($4::timestamptz IS NULL OR (d.created_at, d.id) < ($4, $5::uuid))
        ORDER BY d.created_at DESC, d.id DESC
        LIMIT $6
        """,
        request.id,
        request.status,
        request.event_type,
        after[0] if after else None,
        after[1] if after else None,
        request.limit + 1,
    )
    attempts = await _attempts(
        conn, [row["id"] for row in rows[: request.limit]], newest=LIST_ATTEMPTS_MAX
    )
    items: list[DeliveryView] = []
    size = 0
    for row in rows[: request.limit]:
        view = _view(row, [_cut(a) for a in attempts.get(row["id"], [])])
        size += len(msgspec.json.encode(view))
        if items and size > PAGE_BUDGET_BYTES:
            break
        items.append(view)
    more = len(items) < len(rows)
    next_cursor = None
    if more and items:
        last = rows[len(items) - 1]
        next_cursor = encode_cursor([int(last["created_us"]), str(last["id"])])
    return DeliveryPage(items=items, next_cursor=next_cursor)


async def get_delivery(
    conn: asyncpg.Connection, subscription_id: str, delivery_id: str
) -> DeliveryView | None:
    row = await conn.fetchrow(
        f"SELECT {_DELIVERY_COLUMNS} FROM webhook_fanout.deliveries d"
        " WHERE d.id = $1 AND d.subscription_id = $2",
        uuid.UUID(delivery_id),
        subscription_id,
    )
    if row is None:
        return None
    attempts = await _attempts(conn, [row["id"]], newest=GET_ATTEMPTS_MAX)
    return _view(row, attempts.get(row["id"], []))


async def _attempts(
    conn: asyncpg.Connection, delivery_ids: list[uuid.UUID], *, newest: int
) -> dict[uuid.UUID, list[AttemptView]]:
    if not delivery_ids:
        return {}
    rows = await conn.fetch(
        """
        SELECT * FROM (
            SELECT a.*, row_number() OVER (
                PARTITION BY a.delivery_id ORDER BY a.attempt DESC) AS recent
            FROM webhook_fanout.delivery_attempts a WHERE a.delivery_id = ANY($1::uuid[])
        ) t WHERE recent <= $2
        ORDER BY delivery_id, attempt
        """,
        delivery_ids,
        newest,
    )
    found: dict[uuid.UUID, list[AttemptView]] = {}
    for row in rows:
        found.setdefault(row["delivery_id"], []).append(
            AttemptView(
                attempt=row["attempt"],
                at=row["at"],
                request_headers=_headers(row["request_headers"]),
                response_status=row["response_status"],
                response_body=row["response_body"],
                response_truncated=row["response_truncated"],
                latency_ms=row["latency_ms"],
                error=row["error"],
            )
        )
    return found


def _headers(stored: Any) -> dict[str, str]:
    # The pool decodes jsonb; a bare connection hands over its text.
    decoded = msgspec.json.decode(stored) if isinstance(stored, (str, bytes)) else stored
    if not isinstance(decoded, dict):
        return {}
    return {str(name): str(value) for name, value in decoded.items()}


def _cut(attempt: AttemptView) -> AttemptView:
    body = attempt.response_body
    if body is None or len(body) <= LIST_BODY_CHARS:
        return attempt
    return msgspec.structs.replace(
        attempt, response_body=body[:LIST_BODY_CHARS], response_truncated=True
    )


def _view(row: asyncpg.Record, attempts: list[AttemptView]) -> DeliveryView:
    return DeliveryView(
        id=str(row["id"]),
        webhook_id=row["subscription_id"],
        event_id=row["event_id"],
        event_type=row["event_type"],
        status=row["status"],
        created_at=row["created_at"],
        next_attempt_at=row["next_attempt_at"],
        attempts=attempts,
    )
