"""The ``gateway.idempotency_keys`` table: claim a key, finish it, replay it, forget it.

Request bookkeeping, not a projection: rows use the database clock and are never replayed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import asyncpg

from services.gateway.domain.idempotency import Attempt

KEEP_FOR = dt.timedelta(hours=24)


@dataclass(frozen=True)
class StoredResponse:
    status: int
    headers: dict[str, str]
    body: bytes


async def claim(
    pool: asyncpg.Pool, *, principal: str, key: str, fingerprint: str
) -> tuple[bool, Attempt | None, StoredResponse | None, dt.datetime]:
    """Insert a running attempt unless one exists.

    Returns (claimed, existing attempt, its stored response, database now).
    """
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "WITH ins AS (INSERT INTO gateway.idempotency_keys (principal, idempotency_key, "
            "fingerprint, running, started_at, expires_at) VALUES ($1, $2, $3, true, now(), "
            "now() + $4::interval) ON CONFLICT DO NOTHING RETURNING 1) "
            "SELECT (SELECT count(*) FROM ins) AS claimed, now() AS now",
            principal,
            key,
            fingerprint,
            KEEP_FOR,
        )
        if row["claimed"]:
            return True, None, None, row["now"]
        existing = await conn.fetchrow(
            "SELECT fingerprint, running, status, headers, body, started_at, expires_at "
            "FROM gateway.idempotency_keys WHERE principal = $1 AND idempotency_key = $2",
            principal,
            key,
        )
    if existing is None:  # finished and forgotten in between: try again
        return await claim(pool, principal=principal, key=key, fingerprint=fingerprint)
    attempt = Attempt(
        fingerprint=existing["fingerprint"],
        running=existing["running"],
        started_at=existing["started_at"],
        expires_at=existing["expires_at"],
    )
    stored = None
    if not existing["running"]:
        stored = StoredResponse(existing["status"], dict(existing["headers"]), existing["body"])
    return False, attempt, stored, row["now"]


async def restart(
    pool: asyncpg.Pool, *, principal: str, key: str, fingerprint: str, previous: Attempt
) -> bool:
    """Take over an expired or abandoned attempt; False if another request got there first."""
    status = await pool.execute(
        "UPDATE gateway.idempotency_keys SET fingerprint = $3, running = true, status = NULL, "
        "headers = NULL, body = NULL, started_at = now(), expires_at = now() + $4::interval "
        "WHERE principal = $1 AND idempotency_key = $2 AND started_at = $5",
        principal,
        key,
        fingerprint,
        KEEP_FOR,
        previous.started_at,
    )
    return str(status).endswith(" 1")


async def finish(pool: asyncpg.Pool, *, principal: str, key: str, response: StoredResponse) -> None:
    await pool.execute(
        "UPDATE gateway.idempotency_keys SET running = false, status = $3, headers = $4, "
        "body = $5 WHERE principal = $1 AND idempotency_key = $2",
        principal,
        key,
        response.status,
        response.headers,
        response.body,
    )


async def release(pool: asyncpg.Pool, *, principal: str, key: str) -> None:
    """Forget an attempt that failed without an answer worth repeating (5xx, cancelled)."""
    await pool.execute(
        "DELETE FROM gateway.idempotency_keys WHERE principal = $1 AND idempotency_key = $2 "
        "AND running",
        principal,
        key,
    )


async def purge_expired(pool: asyncpg.Pool) -> int:
    status = await pool.execute("DELETE FROM gateway.idempotency_keys WHERE expires_at <= now()")
    return int(str(status).rsplit(" ", 1)[-1])
