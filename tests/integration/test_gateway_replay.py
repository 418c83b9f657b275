"""`gatehouse replay gateway` rebuilds byte-identical tables; the bootstrap key is made once."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from pathlib import Path

import asyncpg

from contracts.envelope import decode_event
from contracts.events.identity import ApiKeyCreated
from services.gateway.domain.tokens import token_sha256
from services.gateway.projection import PROJECTION_TABLES
from shared.settings import Settings
from tests.conftest import ROOT, StartService, table_digest
from tests.integration.test_gateway_support import gateway_api, row_count


async def _replay_in_subprocess(settings: Settings) -> str:
    env = {
        **os.environ,
        "GATEHOUSE_NATS_URL": settings.nats_url,
        "GATEHOUSE_DATABASE_URL": settings.database_url,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        "replay",
        "gateway",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_replay_rebuilds_identical_tables(
    start_service: StartService, settings: Settings
) -> None:
    async with gateway_api(start_service) as api:
        for slug in ("alpha", "beta", "gamma"):
            await api.new_project(slug, repos=[f"acme/{slug}"])
        await api.call("PATCH", "/api/v1/projects/beta", json={"description": "b", "repos": []})
        await api.call("DELETE", "/api/v1/projects/gamma")
        _, _ = await api.new_key("VIEWER", "OPERATOR", project="alpha")
        revoked_id, _ = await api.new_key("AUDITOR")
        await api.call("DELETE", f"/api/v1/api-keys/{revoked_id}")
        await api.call(
            "POST",
            "/api/v1/users",
            json={"login": "ada", "name": "Ada", "emails": [{"email": "ada@x.org"}]},
        )
        await api.call(
            "POST", "/api/v1/users/ada/emails", json={"email": "a2@x.org", "verified": True}
        )
        await api.call("POST", "/api/v1/users/ada/emails/ada@x.org/verify")
        # A key acting for a user: its owner is rebuilt too.
        ada_key = await api.call(
            "POST", "/api/v1/api-keys", json={"name": "ada", "roles": ["VIEWER"], "user": "ADA"}
        )
        assert ada_key.status == 201 and ada_key.body["user"] == "ada", ada_key.body
        # Request bookkeeping exists too, and is not part of the read model.
        await api.call(
            "POST",
            "/api/v1/projects",
            json={"slug": "delta", "name": "D"},
            headers={"Idempotency-Key": "replay-1"},
        )
        await api.runtime.stop()

    # The commands the read model applied are rebuilt with it (Idempotency-Key re-runs).
    tables = [*PROJECTION_TABLES, "applied_commands"]
    assert await _count(settings, "applied_commands") == 1
    before = await table_digest(settings.database_url, "gateway", tables)
    output = await _replay_in_subprocess(settings)
    assert "gateway.identity: rebuilt from sequence 0" in output
    after = await table_digest(settings.database_url, "gateway", tables)
    assert after == before
    for table, expected in (("projects", 4), ("api_keys", 4), ("users", 1), ("user_emails", 2)):
        assert await _count(settings, table) == expected, table


async def _count(settings: Settings, table: str) -> int:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM gateway.{table}"))
    finally:
        await conn.close()


async def test_bootstrap_key_is_created_once_and_token_file_is_private(
    start_service: StartService, settings: Settings, tmp_path: Path
) -> None:
    token_file = tmp_path / "secrets" / "bootstrap-token"
    first = await start_service("gateway", bootstrap_token_file=str(token_file))
    assert token_file.read_text() == settings.bootstrap_token
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    # The stream carries only the hash of the token.
    msg = await first.bus.js.get_last_msg(first.bus.stream, "apikey.created")
    event = decode_event(msg.data, sequence=int(msg.seq or 0))
    assert isinstance(event.payload, ApiKeyCreated) and event.payload.bootstrap
    assert event.payload.token_sha256 == token_sha256(settings.bootstrap_token)
    assert settings.bootstrap_token.encode() not in msg.data
    assert event.envelope.actor == "system"
    token_file.unlink()  # what `gatehouse up` does once it has printed the token

    # Two more replicas starting at the same time: neither creates another key.
    await asyncio.gather(
        start_service("gateway", bootstrap_token_file=str(token_file)),
        start_service("gateway", bootstrap_token_file=str(token_file)),
    )
    assert await row_count(first, "api_keys") == 1
    assert not token_file.exists()


async def test_bootstrap_token_is_random_when_not_configured(
    start_service: StartService, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    async with gateway_api(
        start_service, bootstrap_token="", bootstrap_token_file=str(token_file)
    ) as api:
        token = token_file.read_text()
        assert token.startswith("gh_") and len(token) == 46
        me = await api.call("GET", "/api/v1/me", token=token)
        assert me.status == 200 and me.body["bootstrap"] is True and me.body["roles"] == ["ADMIN"]
        assert me.body["name"] == "bootstrap-admin"
