"""`gatehouse backup` of a live installation, `gatehouse restore` into an empty one on another
NATS server and database: every read model identical, the restored stack serving.

Real NATS (the suite's, and a second embedded server for the target) and real PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import shutil
import tarfile
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import nats
import pytest

from services.backup.archive import MANIFEST, ArchiveError
from services.backup.command import GAP_SUBJECT, Console, backup, restore
from services.cli import main as cli_main
from services.registry import SERVICES, definition
from shared.bus import Bus
from shared.db import with_database
from shared.embedded import EmbeddedNats, free_port
from shared.service import Runtime
from shared.settings import Settings
from tests.conftest import Infra, StartService, table_digest, wait_until
from tests.integration.test_gateway_support import NO_TOKEN
from tests.integration.test_release_decision_replay import JOB_COLUMNS
from tests.integration.test_release_decision_support import CLEAN, VULNERABLE, gate_stack, sha
from tests.readme_examples import require_tools, run_examples, sh_blocks

QUIET = Console(quiet=True)
README = Path(__file__).resolve().parents[2] / "README.md"
ADMIN = "gh_test_bootstrap_admin_token_0123456789abcdef"

# Every service's kept state (release signing keys, idempotency records, the mirrors' fetch
# status and verification work, webhook secrets and deliveries), as their definitions
# declare it: schema-qualified, sorted.
KEPT = sorted(
    f"{definition(name).schema}.{table}"
    for name in SERVICES
    for table in definition(name).unreplayable_tables
)


@pytest.fixture
def target_nats(tmp_path: Path) -> Iterator[EmbeddedNats]:
    server = EmbeddedNats(tmp_path / "target", port=free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def target(
    infra: Infra, settings: Settings, target_nats: EmbeddedNats
) -> AsyncIterator[Settings]:
    """An empty installation: its own NATS server and its own database."""
    name = f"r_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(infra.database_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    yield settings.with_(
        nats_url=target_nats.url, database_url=with_database(infra.database_url, name)
    )
    admin = await asyncpg.connect(infra.database_url)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


async def leave_gaps(settings: Settings, count: int) -> None:
    """Sequences 1..count used and deleted before anything runs (a purge does the same)."""
    bus = await Bus.connect(settings, name="test-gaps")
    try:
        await bus.ensure_stream()
        for _ in range(count):
            ack = await bus.js.publish(GAP_SUBJECT, b"", stream=bus.stream)
            await bus.js.delete_msg(bus.stream, ack.seq)
    finally:
        await bus.close()


async def read_model_digests(settings: Settings) -> dict[str, str]:
    """schema.table → digest of every table a service keeps, projection or state, except the
    record of backups themselves (the source holds the backup, the target the restore)."""
    digests: dict[str, str] = {}
    conn = await asyncpg.connect(settings.database_url)
    try:
        for name in SERVICES:
            schema = definition(name).schema
            rows = await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 "
                "AND table_type = 'BASE TABLE' AND table_name NOT IN "
                "('schema_migrations', 'projection_checkpoint', 'projection_attempts', 'backups')",
                schema,
            )
            for table in sorted(row["table_name"] for row in rows):
                if table.endswith("jobs"):
                    # A job's lease, attempts and finishing sequence are the run's, not the
                    # events' (as in the replay tests): compare what the events made.
                    jobs = await conn.fetch(
                        f'SELECT {JOB_COLUMNS} FROM "{schema}"."{table}" ORDER BY id'
                    )
                    digests[f"{schema}.{table}"] = repr([tuple(job) for job in jobs])
                    continue
                digests[f"{schema}.{table}"] = await table_digest(
                    settings.database_url, schema, [table]
                )
    finally:
        await conn.close()
    return digests


async def settled(runtimes: list[Runtime]) -> None:
    """Every projection of ``runtimes`` has nothing pending and every job is done."""
    js = runtimes[0].bus.js
    stream = runtimes[0].bus.stream

    async def idle() -> bool:
        for runtime in runtimes:
            for runner in runtime.runners.values():
                info = await js.consumer_info(stream, runner.durable)
                if info.num_pending or info.num_ack_pending:
                    return False
        conn = await asyncpg.connect(runtimes[0].settings.database_url)
        try:
            for jobs in ("scanner.jobs", "release_decision.decision_jobs"):
                if await conn.fetchval(f"SELECT count(*) FROM {jobs} WHERE status <> 'done'"):
                    return False
        finally:
            await conn.close()
        return True

    await wait_until(idle, timeout=20)


async def stream_facts(nats_url: str, stream: str) -> tuple[int, int, list[tuple[int, str]]]:
    """(last sequence, messages, [(sequence, event id)] of every message)."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        ids: list[tuple[int, str]] = []
        for seq in range(1, int(info.state.last_seq) + 1):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                msg = await js.get_msg(stream, seq)
                ids.append((seq, (msg.headers or {}).get("Nats-Msg-Id", "")))
        return int(info.state.last_seq), int(info.state.messages), ids
    finally:
        await nc.close()


async def test_a_restore_rebuilds_every_read_model_identically(
    target: Settings, start_service: StartService, settings: Settings, tmp_path: Path
) -> None:
    # (``target`` first: its NATS server must outlive the services started on it.)
    await leave_gaps(settings, 2)
    others = [await start_service(n) for n in ("audit", "signature-verifier", "webhook-fanout")]
    async with gate_stack(start_service) as gate:
        await gate.project("acme/shop", slug="shop")
        bad, good = sha(), sha()
        await gate.scan("shop", "acme/shop", bad, VULNERABLE)
        await gate.scan("shop", "acme/shop", good, CLEAN)
        await gate.decided("acme/shop", bad, decision="NO_SHIP")
        await gate.decided("acme/shop", good, decision="SHIP")
        _, viewer_token = await gate.s.api.new_key("VIEWER")
        await settled([*others, gate.decisions, gate.s.scanner, gate.s.api.runtime])
        # Before the backup: its own backup.completed event is not in the archive.
        source_digests = await read_model_digests(settings)
        archive = tmp_path / "gatehouse.tar.gz"
        done = await backup(settings, archive, console=QUIET)

        async def backed_up() -> bool:
            health = await gate.call("GET", "/health/backup", token=NO_TOKEN)
            assert "details" not in health.body, "details are for an ADMIN token only"
            return health.status == 200 and health.body["status"] == "ok"

        await wait_until(backed_up)
        detailed = await gate.call("GET", "/health/backup", token=ADMIN)
        assert detailed.body["details"]["last_success"]["sha256"] == done.sha256

    assert archive.stat().st_mode & 0o077 == 0, "the archive holds the signing key: owner only"
    assert sorted(done.tables) == KEPT
    last, messages, ids = await stream_facts(settings.nats_url, settings.stream_name)
    # The backup.completed event came after the archive's last sequence.
    assert done.last_sequence == last - 1 and done.events == messages - 1

    restored = await restore(target, archive, console=QUIET)
    assert restored.last_sequence == done.last_sequence
    assert await read_model_digests(target) == source_digests

    t_last, t_messages, t_ids = await stream_facts(target.nats_url, target.stream_name)
    # Same sequences, same events, the same two leading gaps; then backup.restored.
    assert t_ids[:-1] == ids[:-1] and ids[0][0] == 3
    assert (t_last, t_messages) == (last, messages)

    # The restored installation serves: the same keys, decisions and a valid audit chain.
    await start_service("audit", nats_url=target.nats_url, database_url=target.database_url)
    async with gate_stack(
        start_service, nats_url=target.nats_url, database_url=target.database_url
    ) as gate:
        reply = await gate.call("GET", "/api/v1/projects/shop", token=viewer_token)
        assert reply.status == 200, reply.body
        decision = await gate.decision("acme/shop", bad)
        assert decision.body["decision"] == "NO_SHIP"
        verify = await gate.call("GET", "/api/v1/audit/verify")
        assert verify.status == 200 and verify.body["ok"] is True, verify.body
        health = await gate.call("GET", "/health/backup", token=ADMIN)
        assert health.body["details"]["last_restore"]["backup_id"] == done.backup_id


async def test_a_restore_refuses_a_target_that_holds_anything(
    start_service: StartService, settings: Settings, tmp_path: Path
) -> None:
    await start_service("gateway")
    archive = tmp_path / "a.tar"
    await backup(settings, archive, console=QUIET)
    with pytest.raises(ArchiveError, match=r"not empty|already holds events"):
        await restore(settings, archive, console=QUIET)


async def test_a_damaged_archive_is_refused_before_anything_changes(
    target: Settings, start_service: StartService, settings: Settings, tmp_path: Path
) -> None:
    await start_service("gateway")
    archive = tmp_path / "a.tar"
    await backup(settings, archive, console=QUIET)
    damaged = tmp_path / "damaged.tar"
    with tarfile.open(archive) as source, tarfile.open(damaged, "w") as out:
        for member in source.getmembers():
            data = source.extractfile(member).read()  # type: ignore[union-attr]
            if member.name.startswith("stream/"):
                data = data.replace(b"apikey.created", b"apikey.creatdd", 1)
            member.size = len(data)
            out.addfile(member, io.BytesIO(data))
    with pytest.raises(ArchiveError, match="does not match its SHA-256"):
        await restore(target, damaged, console=QUIET)
    nc = await nats.connect(target.nats_url)
    try:
        with pytest.raises(nats.js.errors.NotFoundError):
            await nc.jetstream().stream_info(target.stream_name)
    finally:
        await nc.close()


async def test_a_failed_backup_is_published_and_health_says_failed(
    start_service: StartService, settings: Settings, tmp_path: Path
) -> None:
    await start_service("gateway")
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.raises(OSError):
        await backup(settings, blocked / "a.tar", console=QUIET)
    from tests.integration.test_gateway_support import gateway_api

    async with gateway_api(start_service) as api:

        async def failed() -> bool:
            reply = await api.call("GET", "/health/backup", token=ADMIN)
            return (
                reply.status == 503
                and reply.body["status"] == "never"
                and (reply.body["details"]["last_failure"] is not None)
            )

        await wait_until(failed)


def test_the_commands_run_from_the_cli(
    settings: Settings,
    target: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    archive = tmp_path / "cli.tar"
    for variable, value in (
        ("NATS_URL", settings.nats_url),
        ("DATABASE_URL", settings.database_url),
    ):
        monkeypatch.setenv(f"GATEHOUSE_{variable}", value)
    asyncio.run(leave_gaps(settings, 1))  # a stream with nothing but a gap
    assert cli_main(["backup", str(archive)]) == 0
    assert "wrote" in capsys.readouterr().out
    manifest = json.loads(tarfile.open(archive).extractfile(MANIFEST).read())  # type: ignore[union-attr]
    assert manifest["stream"]["gaps"] == [[1, 1]]
    monkeypatch.setenv("GATEHOUSE_NATS_URL", target.nats_url)
    monkeypatch.setenv("GATEHOUSE_DATABASE_URL", target.database_url)
    assert cli_main(["restore", str(archive)]) == 0
    assert "every read model was rebuilt" in capsys.readouterr().out
    assert cli_main(["restore", str(archive)]) == 2  # now it is not empty
    assert "restore into a new installation" in capsys.readouterr().err


async def test_the_readme_backup_example_runs(
    start_service: StartService, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_tools()
    monkeypatch.setenv("GATEHOUSE_NATS_URL", settings.nats_url)
    monkeypatch.setenv("GATEHOUSE_DATABASE_URL", settings.database_url)
    gateway = await start_service("gateway")
    [example, _embedded] = sh_blocks(README, "Backup and restore")
    output = await run_examples(
        example, base=f"http://127.0.0.1:{gateway.http_port}", token=ADMIN, cwd=tmp_path
    )
    assert "wrote " in output and '"status":' in output
    [archive] = (tmp_path / "backups").glob("gatehouse-*.tar.gz")
    assert tarfile.open(archive).extractfile(MANIFEST) is not None


def test_the_data_dir_commands_restore_into_a_new_embedded_stack(
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    """`restore --data-dir` into a new folder, then `backup --data-dir` of it: the same events."""
    monkeypatch.setenv("GATEHOUSE_NATS_URL", settings.nats_url)
    monkeypatch.setenv("GATEHOUSE_DATABASE_URL", settings.database_url)
    asyncio.run(leave_gaps(settings, 1))
    asyncio.run(publish_one(settings))
    first = tmp_path / "first.tar"
    assert cli_main(["backup", "--quiet", str(first)]) == 0
    for variable in ("GATEHOUSE_NATS_URL", "GATEHOUSE_DATABASE_URL"):
        monkeypatch.delenv(variable)
    # Outside pytest's own temp root, which pytest keeps 0700: the embedded PostgreSQL runs as
    # another user when we are root, and must reach its folder.
    data_dir = Path(tempfile.mkdtemp(prefix="gatehouse-restore-")) / "new-stack"
    request.addfinalizer(lambda: shutil.rmtree(data_dir.parent, ignore_errors=True))
    assert cli_main(["restore", "--quiet", "--data-dir", str(data_dir), str(first)]) == 0
    again = tmp_path / "again.tar"
    assert cli_main(["backup", "--quiet", "--data-dir", str(data_dir), str(again)]) == 0
    before, after = (
        json.loads(tarfile.open(path).extractfile(MANIFEST).read())  # type: ignore[union-attr]
        for path in (first, again)
    )
    # The second holds the first's events, its gap, and the backup.restored the restore added.
    assert before["stream"]["gaps"] == after["stream"]["gaps"] == [[1, 1]]
    assert after["stream"]["last_sequence"] == before["stream"]["last_sequence"] + 1
    # No service ever ran on the source database; the restore migrated every schema.
    assert before["tables"] == []
    assert sorted(t["table"] for t in after["tables"]) == sorted(
        qualified.split(".", 1)[1] for qualified in KEPT
    )


async def publish_one(settings: Settings) -> None:
    from contracts.events.identity import ProjectCreated

    bus = await Bus.connect(settings, name="test-publish")
    try:
        await bus.publish(
            ProjectCreated(project_id=str(uuid.uuid4()), slug="one", name="One"),
            aggregate="project:one",
            actor="system",
        )
    finally:
        await bus.close()
