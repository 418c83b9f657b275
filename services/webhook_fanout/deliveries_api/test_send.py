"""``POST /api/admin/webhooks/{id}/test``: one ``webhook.test`` event sent once, now, to the
subscription's receiver, in its format and signed with its keys, and recorded as a delivery
with one attempt (``succeeded``, or ``cancelled``: a test is never retried).

This duplicates the delivery engine's sending path (same limits: connect 5 s, total 15 s,
no redirects, at most 64 KiB of the response read; the same address policy,
``shared.outbound``, checked on the addresses the connection actually uses) until the
engine's ``send_test`` replaces it at the merge.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import time
import uuid
from typing import Any, Final

import aiohttp
import asyncpg
import msgspec
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from contracts.envelope import EventPayload, decode_envelope, encode_envelope, make_envelope
from contracts.rpc.webhooks import WebhookTestReply
from services.webhook_fanout.deliveries_api.queue import delivery_id_for
from services.webhook_fanout.domain.formats import Delivery, WebhookFormat, build_request
from services.webhook_fanout.domain.receivers import check_receiver_url
from services.webhook_fanout.domain.signing import (
    SecretScheme,
    SigningKeys,
    WebhookSecret,
    parse_secret,
)
from shared.errors import GatehouseError
from shared.outbound import IPNetwork, OutboundRefused, check_addresses, literal_address, resolve
from shared.service import VERSION

CONNECT_TIMEOUT: Final = 5.0
TOTAL_TIMEOUT: Final = 15.0
RESPONSE_BODY_MAX: Final = 64 * 1024
TEST_EVENT_TYPE: Final = "webhook.test"
_SIGNED_WITH_WHSEC: Final = ("standard", "cloudevents")


class WebhookTest(EventPayload, frozen=True, kw_only=True):
    """A test event: never on the bus, only sent to the receiver asked to be tested (so it
    is not registered in the catalog)."""

    event_type = TEST_EVENT_TYPE
    id: str
    message: str = "A test delivery from Gatehouse: your receiver is reachable."


class CheckedResolver(AbstractResolver):
    """The default resolver, refusing a name that resolves to an address the outbound
    policy refuses: the check runs on the very addresses the connection will use, so DNS
    cannot change between the check and the connect."""

    def __init__(self, allowed: tuple[IPNetwork, ...]) -> None:
        self._inner = DefaultResolver()
        self._allowed = allowed

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        check_addresses(host, [_address(r["host"]) for r in found], self._allowed)
        return found

    async def close(self) -> None:
        await self._inner.close()


def _address(text: str) -> Any:
    address = literal_address(text.split("%", 1)[0])
    assert address is not None  # a resolver answers addresses
    return address


def new_client(allowed: tuple[IPNetwork, ...]) -> aiohttp.ClientSession:
    """The HTTP client of test sends (one per process, opened in the service's lifecycle)."""
    connector = aiohttp.TCPConnector(resolver=CheckedResolver(allowed), use_dns_cache=False)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=TOTAL_TIMEOUT, connect=CONNECT_TIMEOUT),
        # Nothing of a receiver's cookies may reach another receiver.
        cookie_jar=aiohttp.DummyCookieJar(),
    )


class Attempt(msgspec.Struct, frozen=True, kw_only=True):
    headers: dict[str, str]
    status: int | None = None
    body: str | None = None
    truncated: bool = False
    latency_ms: float | None = None
    error: str | None = None


async def keys_of(conn: asyncpg.Connection, sub: asyncpg.Record, now: dt.datetime) -> SigningKeys:
    rows = await conn.fetch(
        "SELECT version, secret FROM webhook_fanout.subscription_secrets"
        " WHERE subscription_id = $1 AND version IN ($2, $2 - 1)",
        sub["id"],
        sub["secret_version"],
    )
    scheme: SecretScheme = "standard" if sub["format"] in _SIGNED_WITH_WHSEC else "orbitalreg"
    by_version: dict[int, WebhookSecret] = {
        row["version"]: parse_secret(row["secret"], scheme=scheme) for row in rows
    }
    current = by_version.get(sub["secret_version"])
    if current is None:
        raise GatehouseError("the subscription's current secret is missing")
    return SigningKeys.at(
        now,
        current=current,
        previous=by_version.get(sub["secret_version"] - 1),
        previous_valid_until=sub["previous_valid_until"],
    )


async def send_test(
    pool: asyncpg.Pool,
    client: aiohttp.ClientSession,
    sub: asyncpg.Record,
    *,
    allowed: tuple[IPNetwork, ...],
    actor: str,
    correlation_id: str | None,
    api_base_url: str,
) -> WebhookTestReply:
    now = dt.datetime.now(dt.UTC)
    envelope = make_envelope(
        WebhookTest(id=sub["id"]),
        source="webhook-fanout",
        aggregate=f"webhook:{sub['id']}",
        actor=actor,
        occurred_at=now,
        correlation_id=correlation_id,
    )
    raw = encode_envelope(envelope)
    event = decode_envelope(raw, sequence=0)
    delivery_id = delivery_id_for(sub["id"], envelope.id)
    fmt: WebhookFormat = sub["format"]
    async with pool.acquire() as conn:
        keys = None if fmt == "slack" else await keys_of(conn, sub, now)
    request = build_request(
        event,
        format=fmt,
        delivery=Delivery(
            delivery_id=delivery_id,
            attempted_at=now,
            version=VERSION,
            api_base_url=api_base_url,
            keys=keys,
        ),
    )
    attempt = await _post(client, sub["url"], request.headers, request.body, allowed=allowed)
    ok = attempt.status is not None and 200 <= attempt.status < 300
    await _record(pool, sub["id"], envelope.id, now, raw, delivery_id, attempt, ok=ok)
    return WebhookTestReply(
        delivery_id=str(delivery_id),
        ok=ok,
        response_status=attempt.status,
        latency_ms=attempt.latency_ms,
        error=attempt.error,
    )


async def _post(
    client: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    body: bytes,
    *,
    allowed: tuple[IPNetwork, ...],
) -> Attempt:
    started = time.perf_counter()

    def failed(error: str) -> Attempt:
        return Attempt(headers=headers, error=error[:1000], latency_ms=_since(started))

    try:
        target = check_receiver_url(url)
        if target.address is not None:  # no resolver runs for a literal address
            check_addresses(target.host, await resolve(target.host, target.port), allowed)
        async with client.post(url, data=body, headers=headers, allow_redirects=False) as resp:
            status = resp.status
            read = await _read_bounded(resp.content)
            latency = _since(started)
    except OutboundRefused as exc:
        return failed(f"refused: {exc.detail}")
    except GatehouseError as exc:
        return failed(f"invalid receiver URL: {exc.detail}")
    except TimeoutError:
        return failed(f"timeout: no complete answer within {TOTAL_TIMEOUT:g}s")
    except aiohttp.ClientError as exc:
        cause = exc.__cause__
        if isinstance(cause, OutboundRefused):
            return failed(f"refused: {cause.detail}")
        return failed(f"connection error: {type(exc).__name__}: {exc}")
    text = read[:RESPONSE_BODY_MAX].decode("utf-8", "replace").replace("\x00", "\ufffd")
    return Attempt(
        headers=headers,
        status=status,
        body=text,
        truncated=len(read) > RESPONSE_BODY_MAX,
        latency_ms=latency,
    )


async def _read_bounded(content: aiohttp.StreamReader) -> bytes:
    """Up to one byte past the limit (so truncation is known), never the whole of a huge
    or endless body."""
    chunks: list[bytes] = []
    size = 0
    while size <= RESPONSE_BODY_MAX:
        chunk = await content.read(RESPONSE_BODY_MAX + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


async def _record(
    pool: asyncpg.Pool,
    subscription_id: str,
    event_id: str,
    occurred_at: dt.datetime,
    raw: bytes,
    delivery_id: uuid.UUID,
    attempt: Attempt,
    *,
    ok: bool,
) -> None:
    # A test event is not in the stream: sequence 0, before every real event.
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO webhook_fanout.delivery_events"
            " (event_id, event_type, stream_seq, occurred_at, envelope)"
            " VALUES ($1, $2, 0, $3, $4)",
            event_id,
            TEST_EVENT_TYPE,
            occurred_at,
            raw,
        )
        await conn.execute(
            "INSERT INTO webhook_fanout.deliveries (id, subscription_id, event_id, event_type,"
            " stream_seq, status, attempts, created_at, finished_at)"
            " VALUES ($1, $2, $3, $4, 0, $5, 1, $6, now())",
            delivery_id,
            subscription_id,
            event_id,
            TEST_EVENT_TYPE,
            "succeeded" if ok else "cancelled",
            occurred_at,
        )
        await conn.execute(
            "INSERT INTO webhook_fanout.delivery_attempts (delivery_id, attempt, at,"
            " request_headers, response_status, response_body, response_truncated,"
            " latency_ms, error) VALUES ($1, 1, $2, $3, $4, $5, $6, $7, $8)",
            delivery_id,
            occurred_at,
            attempt.headers,
            attempt.status,
            attempt.body,
            attempt.truncated,
            attempt.latency_ms,
            attempt.error,
        )


async def close_client(client: aiohttp.ClientSession) -> None:
    await client.close()
    # Lets the connector's transports close before the loop goes (aiohttp's advice).
    await asyncio.sleep(0)
