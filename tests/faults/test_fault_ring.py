"""The fault ring: a whole stack (every service a real process, NATS, PostgreSQL), a burst of
writes through the gateway, and one fault injected mid-burst:

* kill -9 of each service (restarted at once, as `gatehouse up` does);
* NATS killed and started again on the same store (single node);
* PostgreSQL restarted;
* on a 3-node JetStream cluster with the stream at R3, the stream's leader killed.

After each: every acknowledged write present exactly once (stream and read model), no
phantom, no duplicate, projections caught up, the audit chain valid. The figures of every
fault go to ``fault-ring.json`` in the session's temporary folder (``python -m
tests.faults.report`` prints them for a note).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.faults.ring import (
    NATS_LEADER_LOSS,
    SINGLE_NODE_FAULTS,
    Fault,
    Row,
    run_fault,
    table,
    write_report,
)
from tests.faults.servers import stream_replicas
from tests.faults.stack import STREAM, Stack


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Row]]:
    collected: list[Row] = []
    yield collected
    if collected:
        path = Path(tmp_path_factory.getbasetemp()) / "fault-ring.json"
        write_report(collected, path)
        print(f"\n{table(collected)}\n(written to {path})")


@pytest.fixture(scope="module")
async def single_node() -> AsyncIterator[Stack]:
    # Its own temporary folder: PostgreSQL (run as another user under root) must reach it.
    stack = Stack.create(nats_nodes=1)
    try:
        await stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
async def cluster() -> AsyncIterator[Stack]:
    stack = Stack.create(nats_nodes=3)
    try:
        await stack.start()
        yield stack
    finally:
        stack.stop()


def assert_clean(row: Row) -> None:
    assert row.lost == 0 and row.duplicated == 0, row.details
    assert row.phantom == 0 and row.incomplete == 0, row.details
    assert row.audit_chain_ok, row
    # The burst did get through: the fault came after some acknowledgements, and the stack
    # took writes again before the burst's deadline.
    assert row.acknowledged > row.not_acknowledged, row
    assert row.first_write_after_s is not None, row


@pytest.mark.parametrize("fault", SINGLE_NODE_FAULTS, ids=lambda fault: fault.name)
async def test_a_fault_mid_burst_loses_nothing_and_duplicates_nothing(
    single_node: Stack, fault: Fault, rows: list[Row]
) -> None:
    row = await run_fault(single_node, fault, tag=f"f{len(rows)}")
    rows.append(row)
    assert_clean(row)
    if fault.must_be_felt:
        assert row.failed_attempts > 0, row


async def test_the_stream_leader_of_a_3_node_cluster_killed_mid_burst(
    cluster: Stack, rows: list[Row]
) -> None:
    assert await stream_replicas(cluster.nats.url, STREAM) == 3
    leader = await cluster.nats.stream_leader(STREAM)
    row = await run_fault(cluster, NATS_LEADER_LOSS, tag=f"f{len(rows)}")
    rows.append(row)
    assert_clean(row)
    assert row.note == f"leader {leader} killed"
    # The killed node came back as a current replica of a stream led by another node.
    assert await cluster.nats.stream_leader(STREAM) != leader
    assert await cluster.nats.replicas_current(STREAM)
