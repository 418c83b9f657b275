"""Advisory locks that serialise commands on one aggregate across every gateway replica."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from shared.db import advisory_key


@asynccontextmanager
async def aggregate_locks(pool: asyncpg.Pool, *names: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection in a transaction holding ``pg_advisory_xact_lock`` on every name.

    Locks are taken in sorted order, so two commands needing the same locks cannot deadlock.
    They are released when the transaction ends, whatever happens inside.
    """
    async with pool.acquire() as conn, conn.transaction():
        for name in sorted(set(names)):
            await conn.execute("SELECT pg_advisory_xact_lock($1)", advisory_key(f"gateway:{name}"))
        yield conn
