"""Each service connects to PostgreSQL as its own role: "no service reads another's tables"
is refused by the database, not only intended."""

from __future__ import annotations

import asyncpg
import pytest

from services.registry import definition
from shared.db import (
    connect,
    ensure_service_role,
    load_migrations,
    migrate,
    service_role,
    with_credentials,
)
from shared.settings import Settings
from tests.conftest import StartService


async def _migrate_as_superuser(dsn: str, service: str) -> None:
    found = definition(service)
    conn = await connect(dsn)
    try:
        await migrate(conn, schema=found.schema, migrations=load_migrations(found.migrations_dir))
    finally:
        await conn.close()


async def _give_roles(dsn: str, *services: str) -> dict[str, str]:
    """{service: its own DSN}, as `gatehouse up` does."""
    dsns = {}
    conn = await asyncpg.connect(dsn)
    try:
        for service in services:
            schema = definition(service).schema
            role = service_role(schema)
            await ensure_service_role(conn, schema=schema, role=role, password="pw-" + schema)
            dsns[service] = with_credentials(dsn, role, "pw-" + schema)
    finally:
        await conn.close()
    return dsns


async def test_a_services_role_cannot_read_another_schema(settings: Settings) -> None:
    # An installation that ran as one superuser: the schemas exist, owned by it.
    for service in ("scanner", "release-decision"):
        await _migrate_as_superuser(settings.database_url, service)
    dsns = await _give_roles(settings.database_url, "scanner", "release-decision")

    scanner = await asyncpg.connect(dsns["scanner"])
    try:
        assert await scanner.fetchval("SELECT current_user") == "gatehouse_scanner"
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await scanner.fetch("SELECT * FROM release_decision.decisions LIMIT 1")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await scanner.execute("CREATE TABLE release_decision.sneaky (x int)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await scanner.execute("CREATE TABLE public.sneaky (x int)")
        # Its own schema, made before the role existed, is its own: read, write, create.
        await scanner.fetch("SELECT * FROM scanner.advisories LIMIT 1")
        await scanner.execute(
            "INSERT INTO scanner.projection_checkpoint (projection, stream_sequence) "
            "VALUES ('probe', 1)"
        )
        await scanner.execute("CREATE TABLE scanner.scratch (x int)")
    finally:
        await scanner.close()

    decisions = await asyncpg.connect(dsns["release-decision"])
    try:
        await decisions.fetch("SELECT * FROM release_decision.decisions LIMIT 1")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await decisions.fetch("SELECT * FROM scanner.advisories LIMIT 1")
    finally:
        await decisions.close()


async def test_a_superuser_migration_leaves_the_schema_to_its_role(settings: Settings) -> None:
    # Roles first (a fresh `gatehouse up`), then `gatehouse migrate` with the operator's DSN.
    dsns = await _give_roles(settings.database_url, "scanner")
    await _migrate_as_superuser(settings.database_url, "scanner")
    conn = await asyncpg.connect(settings.database_url)
    try:
        owners = await conn.fetch(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'scanner'"
        )
    finally:
        await conn.close()
    assert [row["tableowner"] for row in owners] == ["gatehouse_scanner"]
    scanner = await asyncpg.connect(dsns["scanner"])
    try:
        await scanner.fetch("SELECT * FROM scanner.advisories LIMIT 1")
    finally:
        await scanner.close()


async def test_a_service_runs_as_its_own_role(
    settings: Settings, start_service: StartService
) -> None:
    dsns = await _give_roles(settings.database_url, "scanner")
    runtime = await start_service("scanner", database_url=dsns["scanner"])
    _ready, checks = await runtime.readiness()
    assert checks["database"] and checks["migrations"], checks
    async with runtime.pool.acquire() as conn:
        assert await conn.fetchval("SELECT current_user") == "gatehouse_scanner"
