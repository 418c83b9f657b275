"""Every table of every service is either rebuilt by replay (a projection's) or declared
state that backup archives (``ServiceDefinition.unreplayable_tables``): a new table that is
neither fails here, so `gatehouse backup` can never silently leave state behind."""

from __future__ import annotations

import asyncpg
import pytest

from services.backup.archive import BOOKKEEPING_TABLES, unreplayable_tables
from services.registry import SERVICES
from tests.conftest import StartService


@pytest.mark.parametrize("name", list(SERVICES))
async def test_every_table_is_a_projection_or_declared_kept_state(
    name: str, start_service: StartService
) -> None:
    runtime = await start_service(name)
    schema = runtime.definition.schema
    conn = await asyncpg.connect(runtime.settings.database_url)
    try:
        rows = await conn.fetch(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = $1 AND table_type = 'BASE TABLE'",
            schema,
        )
    finally:
        await conn.close()
    tables = {row["table_name"] for row in rows}
    projected = {t for runner in runtime.runners.values() for t in runner.projection.tables}
    declared = set(runtime.definition.unreplayable_tables)
    assert unreplayable_tables(tables, projected) == sorted(declared), (
        f"{schema}: classify every table as a projection's (Projection.tables) or as kept "
        "state (ServiceDefinition.unreplayable_tables)"
    )
    assert not declared & projected, f"{schema}: a table cannot be both"
    assert not declared & BOOKKEEPING_TABLES
