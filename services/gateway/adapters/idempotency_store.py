"""The ``gateway.idempotency_keys`` table: claim a key, finish it, replay it, forget it.

Request bookkeeping, not a projection: rows use the database clock and are never replayed.
A running attempt names the gateway process running it (``attempt_by``); each process holds
an advisory lock named after its instance id (:class:`ProcessLiveness`) for as long as it
lives, so a retry knows at once whether the attempt's process died.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass

import asyncpg

from contracts.ids import new_id
from services.gateway.domain.idempotency import Attempt
from shared.db import advisory_key, connect


def _liveness_key(instance: str) -> int:
    return advisory_key(f"gateway-instance:{instance}")


class ProcessLiveness:
    """This gateway process, as its replicas see it: a session advisory lock held on a
    connection of its own. PostgreSQL releases it when the process dies (a kill -9 closes
    the socket), which is how a retry tells an abandoned attempt from a running one."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.instance = new_id()
        self._conn: asyncpg.Connection | None = None
        self._guard = asyncio.Lock()

    async def ensure(self) -> str:
        """The instance id, its lock held (taken again after the database restarted)."""
        if self._conn is None or self._conn.is_closed():
            async with self._guard:
                if self._conn is None or self._conn.is_closed():
                    conn = await connect(self.database_url)
                    await conn.execute("SELECT pg_advisory_lock($1)", _liveness_key(self.instance))
                    self._conn = conn
        return self.instance

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


async def _alive(conn: asyncpg.Connection, instance: str | None) -> bool | None:
    """Whether the process ``instance`` still holds its lock (None: the row names none)."""
    if instance is None:
        return None
    key = _liveness_key(instance)
    if await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
        await conn.execute("SELECT pg_advisory_unlock($1)", key)
        return False
    return True


KEEP_FOR = dt.timedelta(hours=24)


@dataclass(frozen=True)
class StoredResponse:
    status: int
    headers: dict[str, str]
    body: bytes


async def claim(
    pool: asyncpg.Pool, *, principal: str, key: str, fingerprint: str, instance: str
) -> tuple[bool, Attempt | None, StoredResponse | None, dt.datetime]:
    """Insert a running attempt (run by process ``instance``) unless one exists.

    Returns (claimed, existing attempt, its stored response, database now).
    """
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "WITH ins AS (INSERT INTO gateway.idempotency_keys (principal, idempotency_key, "
            "fingerprint, running, started_at, expires_at, attempt_by) VALUES ($1, $2, $3, "
            "true, now(), now() + $4::interval, $5) ON CONFLICT DO NOTHING RETURNING 1) "
            "SELECT (SELECT count(*) FROM ins) AS claimed, now() AS now",
            principal,
            key,
            fingerprint,
            KEEP_FOR,
            instance,
        )
        if row["claimed"]:
            return True, None, None, row["now"]
        existing = await conn.fetchrow(
            "SELECT fingerprint, running, status, headers, body, started_at, expires_at, "
            "attempt_by FROM gateway.idempotency_keys "
            "WHERE principal = $1 AND idempotency_key = $2",
            principal,
            key,
        )
        holder_alive = None
        if existing is not None and existing["running"]:
            holder_alive = await _alive(conn, existing["attempt_by"])
    if existing is None:  # finished and forgotten in between: try again
        return await claim(
            pool, principal=principal, key=key, fingerprint=fingerprint, instance=instance
        )
    attempt = Attempt(
        fingerprint=existing["fingerprint"],
        running=existing["running"],
        started_at=existing["started_at"],
        expires_at=existing["expires_at"],
        holder_alive=holder_alive,
        held_by=existing["attempt_by"],
    )
    stored = None
    if not existing["running"]:
        stored = StoredResponse(existing["status"], dict(existing["headers"]), existing["body"])
    return False, attempt, stored, row["now"]


async def restart(
    pool: asyncpg.Pool,
    *,
    principal: str,
    key: str,
    fingerprint: str,
    previous: Attempt,
    instance: str,
) -> bool:
    """Take over an expired or abandoned attempt; False if another request got there first."""
    status = await pool.execute(
        "UPDATE gateway.idempotency_keys SET fingerprint = $3, running = true, status = NULL, "
        "headers = NULL, body = NULL, started_at = now(), expires_at = now() + $4::interval, "
        "attempt_by = $6 WHERE principal = $1 AND idempotency_key = $2 AND started_at = $5",
        principal,
        key,
        fingerprint,
        KEEP_FOR,
        previous.started_at,
        instance,
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
