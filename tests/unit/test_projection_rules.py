"""The pure rules of the projection runner: delivery gaps, lag, transient or permanent."""

from __future__ import annotations

import asyncpg
import msgspec
import nats.errors
import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.envelope import UnknownEventType
from shared.errors import Conflict, PermanentEventError, UpstreamTimeout, UpstreamUnavailable
from shared.projection import consumer_lag, contiguous_deliveries, is_transient


def test_contiguous_deliveries_stop_at_the_first_hole() -> None:
    assert contiguous_deliveries([1, 2, 3], expected=1) == 3
    assert contiguous_deliveries([1, 2, 4, 5], expected=1) == 2
    assert contiguous_deliveries([2, 3], expected=1) == 0
    assert contiguous_deliveries([7, 8], expected=7) == 2
    assert contiguous_deliveries([], expected=1) == 0
    assert contiguous_deliveries([5, 5], expected=5) == 1  # a duplicate is a hole too


@given(st.integers(1, 10_000), st.integers(0, 50), st.integers(0, 50))
def test_contiguous_deliveries_count_exactly_the_unbroken_run(
    start: int, run: int, skip: int
) -> None:
    sequences = list(range(start, start + run))
    if skip:
        sequences += [start + run + skip]  # a delivery went missing in between
    assert contiguous_deliveries(sequences, expected=start) == run


def test_lag_counts_undelivered_and_unapplied_deliveries() -> None:
    # Caught up: everything delivered was applied, acks may still be in flight.
    assert consumer_lag(num_pending=0, num_ack_pending=5, delivered_stream_seq=9, checkpoint=9) == 0
    # Delivered beyond the checkpoint: those are not applied yet.
    assert (
        consumer_lag(num_pending=3, num_ack_pending=4, delivered_stream_seq=12, checkpoint=8) == 7
    )
    assert consumer_lag(num_pending=3, num_ack_pending=0, delivered_stream_seq=0, checkpoint=0) == 3


@pytest.mark.parametrize(
    "error",
    [
        UpstreamUnavailable("db down"),
        UpstreamTimeout("slow"),
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
        asyncpg.exceptions.CannotConnectNowError("starting up"),
        asyncpg.exceptions.TooManyConnectionsError("too many"),
        asyncpg.exceptions.DeadlockDetectedError("deadlock"),
        asyncpg.exceptions.SerializationError("serialization"),
        asyncpg.exceptions.ConnectionDoesNotExistError("gone"),
        asyncpg.InterfaceError("connection is closed"),
        ConnectionResetError(),
        TimeoutError(),
        nats.errors.TimeoutError(),
    ],
)
def test_infrastructure_errors_are_transient(error: BaseException) -> None:
    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        PermanentEventError("invariant"),
        Conflict("duplicate"),
        asyncpg.exceptions.UniqueViolationError("duplicate key"),
        asyncpg.exceptions.CheckViolationError("check"),
        msgspec.ValidationError("bad"),
        UnknownEventType("x"),
        KeyError("bug"),
    ],
)
def test_errors_an_event_will_always_cause_are_permanent(error: BaseException) -> None:
    assert not is_transient(error)
