"""The faults of the ring, each injected mid-burst into a running stack, and the row of
figures each one yields (acknowledged / lost / duplicated / phantom, recovery times).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp

from tests.faults.burst import Burst, Client, run_burst
from tests.faults.stack import ADMIN_TOKEN, STREAM, Stack
from tests.faults.verify import Tally, answers, check, wait_caught_up

# Writes per kind (project, API key, SBOM upload) in one burst, and how they are sent.
EACH = 8
WORKERS = 4
FAULT_AFTER_ACKS = 6
SERVICE_KILLS = (
    "gateway",
    "audit",
    "scanner",
    "release-decision",
    "signature-verifier",
    "webhook-fanout",
)


@dataclass(frozen=True)
class Fault:
    name: str
    inject: Callable[[Stack], Awaitable[str]]  # returns a note (e.g. which node was killed)
    # Run once the burst is over (a killed cluster node is started again).
    heal: Callable[[Stack], Awaitable[None]] | None = None
    # Every client must have felt it (some attempt failed): the gateway's own death.
    must_be_felt: bool = False


def kill_service(name: str) -> Fault:
    async def inject(stack: Stack) -> str:
        service = stack.services[name]
        pid = service.proc.pid if service.proc else None
        service.kill9()
        await stack.restart_service(name)  # at once, as `gatehouse up` does
        return f"pid {pid} killed, restarted"

    return Fault(f"kill -9 {name}", inject, must_be_felt=name == "gateway")


async def _kill_stream_leader(stack: Stack) -> str:
    leader = await stack.nats.stream_leader(STREAM)
    await asyncio.to_thread(stack.nats.node(leader).kill)
    return f"leader {leader} killed"


async def _restart_killed_nodes(stack: Stack) -> None:
    for node in stack.nats.nodes:
        if node.proc is None:
            await asyncio.to_thread(node.start)
    await stack.nats.wait_jetstream()
    await stack.nats.wait_replicas_current(STREAM)


async def _restart_nats(stack: Stack) -> str:
    node = stack.nats.nodes[0]
    await asyncio.to_thread(node.kill)
    await asyncio.to_thread(node.start)
    return "kill -9, started again on the same store"


async def _restart_postgres(stack: Stack) -> str:
    await asyncio.to_thread(stack.postgres.stop)
    await asyncio.to_thread(stack.postgres.start)
    return "fast shutdown, started again"


NATS_LEADER_LOSS = Fault(
    "NATS stream leader killed (3-node cluster, R3)",
    _kill_stream_leader,
    heal=_restart_killed_nodes,
)
NATS_RESTART = Fault("NATS restart (single node)", _restart_nats)
POSTGRES_RESTART = Fault("PostgreSQL restart", _restart_postgres)
SINGLE_NODE_FAULTS = [kill_service(name) for name in SERVICE_KILLS] + [
    NATS_RESTART,
    POSTGRES_RESTART,
]


@dataclass
class Row:
    fault: str
    note: str
    acknowledged: int
    not_acknowledged: int
    unacknowledged_present: int
    lost: int
    duplicated: int
    phantom: int
    incomplete: int
    audit_chain_ok: bool
    failed_attempts: int
    http_500: int
    first_write_after_s: float | None
    caught_up_after_s: float
    details: list[str]
    # What each write that was never acknowledged was answered, attempt after attempt.
    unacknowledged_answers: list[str]

    @classmethod
    def of(
        cls,
        fault: Fault,
        note: str,
        burst: Burst,
        tally: Tally,
        *,
        fault_at: float,
        caught_up: float,
    ) -> Row:
        after = [
            i.acked_at
            for i in burst.acknowledged()
            if i.acked_at is not None and i.attempts[-1].at >= fault_at
        ]
        return cls(
            fault=fault.name,
            note=note,
            acknowledged=tally.acknowledged,
            not_acknowledged=tally.not_acknowledged,
            unacknowledged_present=tally.unacknowledged_present,
            lost=len(tally.lost),
            duplicated=len(tally.duplicated),
            phantom=len(tally.phantom),
            incomplete=len(tally.incomplete),
            audit_chain_ok=tally.audit_ok,
            failed_attempts=burst.failed_attempts(),
            http_500=burst.server_errors(),
            first_write_after_s=round(min(after) - fault_at, 2) if after else None,
            caught_up_after_s=round(caught_up - fault_at, 2),
            details=tally.lost + tally.duplicated + tally.phantom + tally.incomplete,
            unacknowledged_answers=[
                f"{i.kind} {i.key}: {answers(i)}" for i in burst.intents if not i.acknowledged
            ],
        )


async def create_base_project(client: Client, burst: Burst) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while True:
        try:
            status, body = await client.request(
                "POST",
                "/api/v1/projects",
                body={"slug": burst.project_slug, "name": burst.tag, "repos": [burst.repo]},
                headers={"Idempotency-Key": f"{burst.tag}-base"},
            )
            if status == 201:
                return
        except (aiohttp.ClientError, TimeoutError):
            status, body = None, None
        if loop.time() > deadline:
            raise AssertionError(f"the base project could not be made: {status} {body}")
        await asyncio.sleep(0.25)


async def run_fault(stack: Stack, fault: Fault, *, tag: str) -> Row:
    """One burst with ``fault`` injected after the first few acknowledgements, then the
    wait until the stack has caught up and the checks."""
    async with aiohttp.ClientSession() as session:
        client = Client(session, stack.gateway, ADMIN_TOKEN)
        burst = Burst.plan(tag, each=EACH)
        await create_base_project(client, burst)
        notes: list[str] = []

        async def inject() -> None:
            notes.append(await fault.inject(stack))

        fault_at = await run_burst(
            client, burst, workers=WORKERS, fault_after_acks=FAULT_AFTER_ACKS, fault=inject
        )
        if fault.heal is not None:
            await fault.heal(stack)
        await wait_caught_up(stack, client, burst)
        caught_up = asyncio.get_running_loop().time() - burst.started
        tally = await check(stack, client, burst)
    return Row.of(fault, notes[0], burst, tally, fault_at=fault_at, caught_up=caught_up)


COLUMNS = (
    ("fault", "fault"),
    ("ack", "acknowledged"),
    ("not ack", "not_acknowledged"),
    ("not ack, present", "unacknowledged_present"),
    ("lost", "lost"),
    ("dup", "duplicated"),
    ("phantom", "phantom"),
    ("audit ok", "audit_chain_ok"),
    ("retried", "failed_attempts"),
    ("500s", "http_500"),
    ("1st write after s", "first_write_after_s"),
    ("caught up after s", "caught_up_after_s"),
)


def table(rows: list[Row]) -> str:
    """A Markdown table of the rows."""
    lines = [
        "| " + " | ".join(title for title, _ in COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    for row in rows:
        values = asdict(row)
        cells = ["-" if values[key] is None else str(values[key]) for _, key in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(rows: list[Row], path: Path) -> None:
    path.write_text(json.dumps([asdict(row) for row in rows], indent=2) + "\n")
