"""A small read model for testing the service kit against real NATS and PostgreSQL.

:class:`CountingProjection` records every ``project.created`` event in ``kit_test.projects``
with the position at which it was applied, so a test can see at once whether events were
applied exactly once (primary key + unique sequence) and in stream order (position).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import prometheus_client

from contracts.envelope import Event
from contracts.events.identity import ProjectCreated
from contracts.ids import new_id
from shared.bus import Bus
from shared.db import Migration, create_pool, ensure_database, migrate
from shared.errors import PermanentEventError, UpstreamUnavailable
from shared.projection import ProjectionRunner
from shared.settings import Settings

SCHEMA = "kit_test"
SERVICE = "kit-test"
MIGRATIONS = [
    Migration(
        1,
        "0001_projects",
        """
        CREATE TABLE projects (
            project_id text PRIMARY KEY,
            slug text NOT NULL,
            stream_sequence bigint NOT NULL UNIQUE,
            position integer NOT NULL UNIQUE
        );
        """,
    )
]


@dataclass(eq=False)
class CountingProjection:
    name: str = "project_counter"
    schema: str = SCHEMA
    subjects: Sequence[str] | None = ("project.created",)
    tables: Sequence[str] = ("projects",)
    # Events with these slugs fail permanently (they must be dead-lettered).
    poison_slugs: set[str] = field(default_factory=set)
    # The next N apply calls write their rows and then fail with a transient error.
    transient_failures: int = 0
    # Calls from this number on wait for `released` before touching anything.
    hold_from_call: int | None = None
    released: asyncio.Event = field(default_factory=asyncio.Event)
    # Every call first waits for this advisory lock, inside the database.
    wait_for_lock: int | None = None
    calls: int = 0

    async def apply(self, conn: asyncpg.Connection, events: Sequence[Event]) -> None:
        self.calls += 1
        if self.hold_from_call is not None and self.calls >= self.hold_from_call:
            await self.released.wait()
        if self.wait_for_lock is not None:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", self.wait_for_lock)
        for event in events:
            payload = event.payload
            assert isinstance(payload, ProjectCreated)
            if payload.slug in self.poison_slugs:
                raise PermanentEventError(f"project {payload.slug} violates an invariant")
            await conn.execute(
                f"INSERT INTO {SCHEMA}.projects (project_id, slug, stream_sequence, position) "
                f"SELECT $1, $2, $3, count(*) + 1 FROM {SCHEMA}.projects",
                payload.project_id,
                payload.slug,
                event.sequence,
            )
        if self.transient_failures > 0:
            self.transient_failures -= 1
            raise UpstreamUnavailable("a dependency of the projection is briefly unavailable")


@dataclass
class Kit:
    settings: Settings
    bus: Bus
    pool: asyncpg.Pool
    runners: list[ProjectionRunner] = field(default_factory=list)

    def runner(
        self, projection: CountingProjection, *, bus: Bus | None = None, **overrides: Any
    ) -> ProjectionRunner:
        settings = self.settings.with_(service=SERVICE, **overrides)
        runner = ProjectionRunner(
            projection, bus=bus or self.bus, pool=self.pool, settings=settings
        )
        self.runners.append(runner)
        return runner

    async def publish(self, *slugs: str) -> list[int]:
        """Publish one project.created per slug; returns their stream sequences."""
        sequences = []
        for slug in slugs:
            project_id = new_id()
            _, seq = await self.bus.publish(
                ProjectCreated(project_id=project_id, slug=slug, name=slug.title()),
                aggregate=f"project:{project_id}",
                actor="system",
            )
            sequences.append(seq)
        return sequences

    async def query(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.settings.database_url)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    async def applied(self) -> list[tuple[int, str]]:
        """(stream sequence, slug) of the applied events, in the order they were applied."""
        rows = await self.query(
            f"SELECT stream_sequence, slug FROM {SCHEMA}.projects ORDER BY position"
        )
        return [(int(r["stream_sequence"]), str(r["slug"])) for r in rows]

    async def checkpoint(self, projection: str = "project_counter") -> int | None:
        rows = await self.query(
            f"SELECT stream_sequence FROM {SCHEMA}.projection_checkpoint WHERE projection = $1",
            projection,
        )
        return int(rows[0]["stream_sequence"]) if rows else None

    async def dead_letters(self) -> list[asyncpg.Record]:
        return await self.query(
            f"SELECT stream_sequence, subject, event_id, payload, error "
            f"FROM {SCHEMA}.dead_letter ORDER BY stream_sequence"
        )


async def prepare_schema(settings: Settings) -> None:
    await ensure_database(settings.database_url)
    conn = await asyncpg.connect(settings.database_url)
    try:
        await migrate(conn, schema=SCHEMA, migrations=MIGRATIONS)
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def open_kit(settings: Settings) -> AsyncIterator[Kit]:
    await prepare_schema(settings)
    bus = await Bus.connect(settings, name="kit-test")
    await bus.ensure_stream()
    pool = await create_pool(settings.database_url, min_size=1, max_size=8)
    kit = Kit(settings=settings, bus=bus, pool=pool)
    try:
        yield kit
    finally:
        for runner in kit.runners:
            await runner.stop()
        await pool.close()
        await bus.close()


def metric(name: str, projection: str = "project_counter") -> float:
    value = prometheus_client.REGISTRY.get_sample_value(
        name, {"service": SERVICE, "projection": projection}
    )
    return value or 0.0
