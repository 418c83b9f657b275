"""Which exceptions are outages (503 with Retry-After) and which are bugs (500)."""

from __future__ import annotations

import asyncpg
import nats.errors
import pytest

from shared.errors import (
    BusUnavailable,
    DatabaseUnavailable,
    GatehouseError,
    NotFound,
    UpstreamUnavailable,
    error_from_problem,
    outage_of,
)
from shared.http import problem_response


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.exceptions.CannotConnectNowError("starting up"),
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
        asyncpg.exceptions.ConnectionDoesNotExistError("closed mid-query"),
        asyncpg.exceptions.TooManyConnectionsError("too many"),
    ],
)
def test_database_server_errors_are_database_unavailable(exc: Exception) -> None:
    outage = outage_of(exc)
    assert isinstance(outage, DatabaseUnavailable)
    assert (outage.status, outage.code, outage.retry_after) == (503, "database_unavailable", 1)


@pytest.mark.parametrize(
    "exc",
    [
        nats.errors.ConnectionClosedError(),
        nats.errors.ConnectionReconnectingError(),
        nats.errors.NoServersError(),
        nats.errors.NoRespondersError(),
        nats.errors.TimeoutError(),
    ],
)
def test_bus_errors_are_bus_unavailable(exc: Exception) -> None:
    outage = outage_of(exc)
    assert isinstance(outage, BusUnavailable)
    assert (outage.status, outage.code) == (503, "bus_unavailable")


@pytest.mark.parametrize(
    "exc",
    [
        KeyError("x"),
        ValueError("bad"),
        asyncpg.exceptions.UndefinedColumnError("column does not exist"),
        asyncpg.exceptions.UniqueViolationError("duplicate key"),
        asyncpg.InterfaceError("another operation is in progress"),
        ConnectionRefusedError(),  # not raised by a driver
        TimeoutError(),
        NotFound("gone"),
    ],
)
def test_bugs_and_answers_are_not_outages(exc: Exception) -> None:
    assert outage_of(exc) is None


def _raise_inside_driver(exc: BaseException) -> BaseException:
    """An exception whose traceback runs through a driver frame, as a pool reconnecting."""
    namespace: dict[str, object] = {"__name__": "asyncpg.pool"}
    exec("def reconnect(exc):\n    raise exc\n", namespace)
    try:
        namespace["reconnect"](exc)  # type: ignore[operator]
    except BaseException as raised:
        return raised
    raise AssertionError("not raised")


def test_a_refused_socket_or_timeout_inside_the_database_driver_is_an_outage() -> None:
    for exc in (ConnectionRefusedError(111, "refused"), TimeoutError()):
        assert isinstance(outage_of(_raise_inside_driver(exc)), DatabaseUnavailable)


def test_a_503_answers_retry_after_and_a_500_does_not() -> None:
    unavailable = problem_response(DatabaseUnavailable("down"), request_id="r1")
    assert unavailable.status == 503 and unavailable.headers["Retry-After"] == "1"
    bug = problem_response(GatehouseError(), request_id="r2")
    assert bug.status == 500 and "Retry-After" not in bug.headers


def test_a_503_relayed_from_an_owner_keeps_its_code_and_retry_after() -> None:
    relayed = error_from_problem(
        {"status": 503, "code": "database_unavailable", "title": "The database is unavailable"}
    )
    assert isinstance(relayed, UpstreamUnavailable)
    assert relayed.code == "database_unavailable"
    assert problem_response(relayed, request_id="r3").headers["Retry-After"] == "1"


def test_a_driver_state_error_raised_while_handling_an_outage_is_that_outage() -> None:
    """Releasing a connection the server terminated mid-query fails in the driver's state
    machine (InternalClientError), with the outage as its context."""
    try:
        try:
            raise asyncpg.exceptions.AdminShutdownError("terminating connection")
        except asyncpg.exceptions.AdminShutdownError:
            raise asyncpg.exceptions.InternalClientError("cannot switch state") from None
    except asyncpg.exceptions.InternalClientError as exc:
        assert isinstance(outage_of(exc), DatabaseUnavailable)
    assert outage_of(asyncpg.exceptions.InternalClientError("cannot switch state")) is None
