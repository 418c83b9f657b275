"""The audit service against real NATS and PostgreSQL: every event once, hash-chained,
append-only, tamper-evident, idempotent under redelivery, crash and replay."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import asyncpg
import msgspec
import pytest

from contracts.envelope import encode_envelope
from contracts.rpc.audit import (
    QUERY,
    SERVICE,
    AuditFilters,
    AuditPage,
    AuditQueryRequest,
)
from services.audit.domain.chain import GENESIS_HASH, link_hash
from shared.embedded import die_with_parent
from shared.errors import ValidationFailed
from shared.rpc import call
from shared.settings import Settings
from tests.conftest import StartService, table_digest, wait_until
from tests.integration.audit_support import (
    CLI,
    CLI_CWD,
    CTX,
    TABLES,
    caught_up,
    checkpoint,
    cli_env,
    fetch,
    project_created,
    publish_burst,
    publish_raw,
    verify,
)


async def test_every_event_is_recorded_once_in_stream_order(
    start_service: StartService, settings: Settings
) -> None:
    audit = await start_service("audit")
    bus = audit.bus
    known = project_created(actor="apikey:alice")
    await bus.publish_envelope(known)
    # A type this code does not know (a newer publisher) and a payload that does not match
    # its Struct are still facts on the stream: both are recorded.
    unknown = msgspec.structs.replace(project_created(), type="project.renamed")
    await publish_raw(bus, unknown.type, encode_envelope(unknown), msg_id=unknown.id)
    odd = project_created()
    odd_bytes = encode_envelope(odd).replace(b'"slug":"', b'"slug":"NOT A SLUG ')
    await publish_raw(bus, odd.type, odd_bytes, msg_id=odd.id)
    # Bytes that are no envelope at all are dead-lettered, and the log moves on.
    garbage_seq = await publish_raw(bus, "project.created", b"not json")
    for _ in range(3):
        await bus.publish_envelope(project_created())
    last = await caught_up(audit)

    rows = await fetch(
        settings,
        "SELECT sequence, event_id, type, actor, event, prev_hash, hash "
        "FROM audit.entries ORDER BY sequence",
    )
    assert [r["sequence"] for r in rows] == [s for s in range(1, last + 1) if s != garbage_seq]
    assert rows[0]["event_id"] == known.id and rows[0]["actor"] == "apikey:alice"
    assert rows[0]["event"].encode() == encode_envelope(known)  # our events stored as sent
    assert rows[1]["type"] == "project.renamed"
    # The chain, recomputed here from its definition.
    prev = GENESIS_HASH
    for row in rows:
        assert bytes(row["prev_hash"]) == prev
        assert bytes(row["hash"]) == link_hash(prev, row["event"].encode())
        prev = bytes(row["hash"])
    dead = await fetch(settings, "SELECT stream_sequence, error FROM audit.dead_letter")
    assert [(d["stream_sequence"], "undecodable" in d["error"]) for d in dead] == [
        (garbage_seq, True)
    ]
    result = await verify(bus)
    assert (result.ok, result.checked, result.first_bad_sequence) == (True, len(rows), None)
    assert result.last_hash == prev.hex() and result.done


async def test_duplicates_and_redelivery_do_not_insert_twice(
    start_service: StartService, settings: Settings
) -> None:
    audit = await start_service("audit")
    first = project_created()
    await audit.bus.publish_envelope(first)
    # The same event again, as a retry outside JetStream's duplicate window would put it.
    await publish_raw(audit.bus, first.type, encode_envelope(first), msg_id="another-id")
    for _ in range(4):
        await audit.bus.publish_envelope(project_created())
    last = await caught_up(audit)
    assert last == 6
    assert await _count(settings) == 5
    await audit.stop()

    # The checkpoint lost (as if rows had committed without it): everything is delivered
    # again from sequence 1, and nothing is recorded twice.
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute("DELETE FROM audit.projection_checkpoint")
    finally:
        await conn.close()
    again = await start_service("audit")
    await again.bus.publish_envelope(project_created())
    await caught_up(again)
    assert await _count(settings) == 6
    ids = await fetch(settings, "SELECT count(DISTINCT event_id) AS n FROM audit.entries")
    assert ids[0]["n"] == 6
    result = await verify(again.bus)
    assert result.ok and result.checked == 6


async def test_the_log_is_append_only(start_service: StartService, settings: Settings) -> None:
    audit = await start_service("audit")
    for _ in range(3):
        await audit.bus.publish_envelope(project_created())
    await caught_up(audit)
    conn = await asyncpg.connect(settings.database_url)
    try:
        for sql in (
            "UPDATE audit.entries SET actor = 'x' WHERE sequence = 2",
            "DELETE FROM audit.entries WHERE sequence = 3",
            "TRUNCATE audit.entries",
        ):
            with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
                await conn.execute(sql)
    finally:
        await conn.close()
    assert await _count(settings) == 3


@pytest.mark.parametrize(
    ("tamper", "problem"),
    [
        ("event = replace(event, 'A project', 'B project')", "hash does not match"),
        ("actor = 'apikey:someone-else'", "column actor differs"),
        (
            "hash = sha256(prev_hash || convert_to(replace(event, 'A', 'B'), 'UTF8')), "
            "event = replace(event, 'A', 'B')",
            None,
        ),
    ],
)
async def test_verify_finds_the_tampered_entry(
    start_service: StartService, settings: Settings, tamper: str, problem: str | None
) -> None:
    audit = await start_service("audit")
    for _ in range(6):
        await audit.bus.publish_envelope(project_created())
    await caught_up(audit)
    assert (await verify(audit.bus)).ok
    conn = await asyncpg.connect(settings.database_url)
    try:
        async with conn.transaction():
            # A superuser can switch the append-only trigger off; the chain still tells.
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute(f"UPDATE audit.entries SET {tamper} WHERE sequence = 4")
    finally:
        await conn.close()
    result = await verify(audit.bus)
    assert not result.ok
    if problem is None:
        # A forged entry with a recomputed hash breaks the link of the entry after it.
        assert result.first_bad_sequence == 5 and "prev_hash" in (result.problem or "")
        assert result.checked == 5
    else:
        assert result.first_bad_sequence == 4 and problem in (result.problem or "")
        assert result.checked == 4 and result.last_sequence == 3


async def test_verify_works_in_bounded_steps(start_service: StartService) -> None:
    audit = await start_service("audit")
    await publish_burst(audit.bus, [project_created() for _ in range(25)])
    await caught_up(audit)
    after, checked, steps = 0, 0, 0
    while True:
        step = await verify(audit.bus, after_sequence=after, max_rows=10)
        assert step.ok
        checked += step.checked
        steps += 1
        if step.done:
            break
        after = step.last_sequence
    assert (checked, steps, step.last_sequence, step.up_to_sequence) == (25, 3, 25, 25)
    whole = await verify(audit.bus)
    assert whole.last_hash == step.last_hash
    with pytest.raises(ValidationFailed, match="no audit entry at sequence 999"):
        await verify(audit.bus, after_sequence=999)


async def test_query_waits_for_a_sequence_it_has_not_applied(
    start_service: StartService,
) -> None:
    audit = await start_service("audit")
    event = project_created()
    sequence = await audit.bus.publish_envelope(event)
    page = await call(
        audit.bus,
        SERVICE,
        QUERY,
        AuditQueryRequest(filters=AuditFilters(aggregate=event.aggregate), min_sequence=sequence),
        AuditPage,
        ctx=CTX,
        timeout=5,
    )
    assert [item.event_id for item in page.items] == [event.id]


async def test_kill_9_in_the_middle_of_a_burst_loses_and_doubles_nothing(
    start_service: StartService, settings: Settings, tmp_path: Path
) -> None:
    """SIGKILL the audit process while it applies 5,000 events, start it again: each event
    is in the log exactly once and the chain verifies."""
    count = 5_000
    publisher = await start_service("scanner")  # any service: it brings a connected bus
    envelopes = [project_created() for _ in range(count)]
    assert await publish_burst(publisher.bus, envelopes) == count

    # Small batches: many transactions, so the kill lands between and inside them.
    env = cli_env(settings, GATEHOUSE_PROJECTION_BATCH_SIZE="20")
    log_path = tmp_path / "audit.log"
    first = await _serve_audit(env, log_path)
    try:

        async def well_under_way() -> bool:
            return await _count_or_zero(settings) >= count // 4

        await wait_until(well_under_way, timeout=60, interval=0.005)
    finally:
        first.send_signal(signal.SIGKILL)
        await first.wait()
    killed_at = await checkpoint(settings)
    assert 0 < killed_at < count, "the kill did not land in the middle of the burst"

    second = await _serve_audit(env, log_path)
    try:

        async def done() -> bool:
            return await checkpoint(settings) == count

        await wait_until(done, timeout=120, interval=0.1)
        rows = await fetch(
            settings,
            "SELECT count(*) AS n, count(DISTINCT event_id) AS ids, min(sequence) AS lo, "
            "max(sequence) AS hi FROM audit.entries",
        )
        assert dict(rows[0]) == {"n": count, "ids": count, "lo": 1, "hi": count}
        stored = await fetch(settings, "SELECT event_id FROM audit.entries")
        assert {r["event_id"] for r in stored} == {e.id for e in envelopes}
        result = await verify(publisher.bus)  # answered by the restarted process
        assert (result.ok, result.checked) == (True, count)
        dead = await fetch(settings, "SELECT count(*) AS n FROM audit.dead_letter")
        assert dead[0]["n"] == 0
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(second.wait(), 20)
        except TimeoutError:
            second.kill()
            await second.wait()
    assert second.returncode == 0, log_path.read_text()[-2000:]


async def _serve_audit(env: dict[str, str], log_path: Path) -> asyncio.subprocess.Process:
    with log_path.open("ab") as log_file:
        return await asyncio.create_subprocess_exec(
            *CLI,
            "serve",
            "audit",
            cwd=CLI_CWD,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=asyncio.subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )


async def test_replay_rebuilds_an_identical_log(
    start_service: StartService, settings: Settings
) -> None:
    audit = await start_service("audit")
    first = project_created()
    await audit.bus.publish_envelope(first)
    await publish_raw(audit.bus, first.type, encode_envelope(first), msg_id="dup")
    await publish_raw(audit.bus, "project.created", b"garbage")
    await publish_burst(audit.bus, [project_created() for _ in range(30)])
    await caught_up(audit)
    await audit.stop()
    before = await table_digest(settings.database_url, "audit", TABLES)
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        "replay",
        "audit",
        cwd=CLI_CWD,
        env=cli_env(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    assert "audit.log: rebuilt from sequence 0" in out.decode()
    assert await table_digest(settings.database_url, "audit", TABLES) == before
    assert await _count(settings) == 31
    dead = await fetch(settings, "SELECT stream_sequence FROM audit.dead_letter")
    assert [d["stream_sequence"] for d in dead] == [3]


async def _count(settings: Settings) -> int:
    rows = await fetch(settings, "SELECT count(*) AS n FROM audit.entries")
    return int(rows[0]["n"])


async def _count_or_zero(settings: Settings) -> int:
    try:
        return await _count(settings)
    except asyncpg.UndefinedTableError:  # not migrated yet
        return 0
