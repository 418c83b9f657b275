"""The baseline for the gateway read figure: a bare aiohttp + asyncpg app.

It answers ``GET /projects/{id}`` with one indexed single-row select from a table that is a
copy of the gateway's own (same columns and indexes, ``CREATE TABLE … (LIKE … INCLUDING
ALL)``) and encodes the row with msgspec, as the gateway does. No auth, no middleware: the
floor an aiohttp service on this machine can reach for this query.

Run by the harness as ``python -m tests.bench.baseline_app`` with its settings in
``BENCH_BASELINE_*`` environment variables.
"""

from __future__ import annotations

import os
import re

import asyncpg
import msgspec
from aiohttp import web

DATABASE_KEY = web.AppKey("pool", asyncpg.Pool)
QUERY_KEY = web.AppKey("query", str)
_QUALIFIED_NAME = re.compile(r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$")
_encode = msgspec.json.Encoder().encode


async def get_project(request: web.Request) -> web.Response:
    async with request.app[DATABASE_KEY].acquire() as conn:
        row = await conn.fetchrow(request.app[QUERY_KEY], request.match_info["project_id"])
    if row is None:
        return web.Response(
            status=404, body=b'{"detail":"not found"}', content_type="application/json"
        )
    return web.Response(body=_encode(dict(row)), content_type="application/json")


async def ready(_: web.Request) -> web.Response:
    return web.Response(body=b'{"status":"ok"}', content_type="application/json")


def build_app(*, database_url: str, table: str, pool_max: int) -> web.Application:
    if not _QUALIFIED_NAME.match(table):
        raise ValueError(f"BENCH_BASELINE_TABLE must be schema.table, got {table!r}")
    app = web.Application()
    app[QUERY_KEY] = f"SELECT * FROM {table} WHERE id = $1"

    async def database(app: web.Application):  # type: ignore[no-untyped-def]
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=pool_max)
        assert pool is not None
        app[DATABASE_KEY] = pool
        yield
        await pool.close()

    app.cleanup_ctx.append(database)
    app.router.add_get("/projects/{project_id}", get_project)
    app.router.add_get("/health/ready", ready)
    return app


def main() -> None:
    app = build_app(
        database_url=os.environ["BENCH_BASELINE_DATABASE_URL"],
        table=os.environ["BENCH_BASELINE_TABLE"],
        pool_max=int(os.environ.get("BENCH_BASELINE_POOL_MAX", "10")),
    )
    web.run_app(
        app,
        host="127.0.0.1",
        port=int(os.environ["BENCH_BASELINE_PORT"]),
        access_log=None,
        print=None,
    )


if __name__ == "__main__":
    main()
