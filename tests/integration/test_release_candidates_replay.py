"""The candidates read model rebuilt from sequence 0 is identical to the one built live."""

from __future__ import annotations

import asyncpg

from services.registry import definition
from services.release_decision.candidates.projection import NAME
from services.release_decision.candidates.store import PROJECTION_TABLES
from shared.service import Runtime
from shared.settings import Settings
from tests.conftest import StartService, table_digest
from tests.integration.release_candidates_support import SHA_A, SHA_B, SHA_C, new_project
from tests.integration.test_gateway_support import gateway_api


async def test_replay_rebuilds_identical_tables(
    start_service: StartService, settings: Settings
) -> None:
    decisions = await start_service("release-decision")
    async with gateway_api(start_service) as api:
        slug = await new_project(api, "acme/api")
        for version, commit in (
            ("v1.0.0-rc1", SHA_A),
            ("v1.0.0-rc2", SHA_B),
            ("v2.0.0-rc1", SHA_C),
        ):
            reply = await api.call(
                "POST",
                f"/api/releases/{slug}/releases/{version}",
                json={"repo": "acme/api", "commit": commit},
            )
            assert reply.status == 201, reply.body
        env = f"/api/releases/{slug}/environments"
        await api.call("PUT", f"{env}/prod", json={"workflow_url": "https://ci.example.com/deploy"})
        await api.call("PUT", f"{env}/prod", json={"protected": False, "workflow_url": None})
        await api.call("PUT", f"{env}/staging", json={})
        for target, version, statuses in (
            ("prod", "v1.0.0-rc1", ("in_progress", "success")),
            ("prod", "v1.0.0-rc2", ("failure",)),
            ("prod", "v2.0.0-rc1", ("success",)),
            ("staging", "v2.0.0-rc1", ("queued",)),
        ):
            path = f"{env}/{target}/deployments"
            await api.call("POST", path, json={"release_candidate_version": version})
            for status in statuses:
                reply = await api.call(
                    "PATCH", path, json={"release_candidate_version": version, "status": status}
                )
                assert reply.status == 200, reply.body
        await api.call(
            "PATCH",
            f"{env}/staging/deployments",
            json={"release_candidate_version": "v1.0.0-rc2", "status": "success"},
        )
    await decisions.stop()

    tables = list(PROJECTION_TABLES)
    counts = await _counts(settings, tables)
    assert counts == {
        "workflow_jobs": 0,
        "deployment_statuses": 11,
        "deployments": 5,
        "environments": 2,
        "release_candidates": 3,
        "releases": 2,
    }, counts
    before = await table_digest(settings.database_url, "release_decision", tables)
    runtime = Runtime(definition("release-decision"), settings.with_(service="release-decision"))
    await runtime.start(serve=False)
    try:
        applied = await runtime.runners[NAME].replay()
    finally:
        await runtime.stop()
    assert applied > 0
    assert await table_digest(settings.database_url, "release_decision", tables) == before
    assert await _counts(settings, tables) == counts


async def _counts(settings: Settings, tables: list[str]) -> dict[str, int]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return {
            t: int(await conn.fetchval(f"SELECT count(*) FROM release_decision.{t}"))
            for t in tables
        }
    finally:
        await conn.close()
