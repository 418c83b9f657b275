"""The retry schedule, Retry-After, outcome classification, dead letters and disabling."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.webhook_fanout.domain.retry import (
    DISABLE_AFTER,
    JITTER,
    MAX_ATTEMPTS,
    RETRY_AFTER_CAP,
    SCHEDULE,
    AttemptOutcome,
    DeadLetter,
    Delivered,
    Gone,
    Retry,
    after_attempt,
    classify,
    delay_before,
    failing_too_long,
    retry_after_delay,
)

T0 = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)
MIDDLE = 0.5  # no jitter


def test_the_schedule_is_standard_webhooks() -> None:
    assert [int(d.total_seconds()) for d in SCHEDULE] == [
        0,
        5,
        300,
        1800,
        7200,
        18000,
        36000,
        50400,
        72000,
        86400,
    ]
    assert MAX_ATTEMPTS == 10


@pytest.mark.parametrize(
    ("outcome", "verdict"),
    [
        (AttemptOutcome(status=200), "success"),
        (AttemptOutcome(status=204), "success"),
        (AttemptOutcome(status=299), "success"),
        (AttemptOutcome(status=410), "gone"),
        (AttemptOutcome(status=301), "failure"),
        (AttemptOutcome(status=400), "failure"),
        (AttemptOutcome(status=404), "failure"),
        (AttemptOutcome(status=429), "failure"),
        (AttemptOutcome(status=500), "failure"),
        (AttemptOutcome(status=503), "failure"),
        (AttemptOutcome(error="timeout"), "failure"),
        (AttemptOutcome(error="connection"), "failure"),
    ],
)
def test_classification(outcome: AttemptOutcome, verdict: str) -> None:
    assert classify(outcome) == verdict


def test_a_failing_delivery_walks_the_schedule_then_is_dead_lettered() -> None:
    at = T0
    for attempt in range(1, MAX_ATTEMPTS):
        step = after_attempt(
            AttemptOutcome(status=500), attempt=attempt, finished_at=at, random_unit=MIDDLE
        )
        assert step == Retry(attempt=attempt + 1, at=at + SCHEDULE[attempt])
        at = step.at
    # 75 h 35 min 5 s after the first attempt, as in the spec's table.
    assert at - T0 == dt.timedelta(hours=75, minutes=35, seconds=5)
    last = after_attempt(
        AttemptOutcome(error="timeout"), attempt=MAX_ATTEMPTS, finished_at=at, random_unit=MIDDLE
    )
    assert last == DeadLetter(attempts=MAX_ATTEMPTS)


def test_success_and_gone_end_the_delivery_at_any_attempt() -> None:
    for attempt in (1, 5, MAX_ATTEMPTS):
        assert (
            after_attempt(
                AttemptOutcome(status=201), attempt=attempt, finished_at=T0, random_unit=0.1
            )
            == Delivered()
        )
        assert (
            after_attempt(
                AttemptOutcome(status=410), attempt=attempt, finished_at=T0, random_unit=0.1
            )
            == Gone()
        )


@given(attempt=st.integers(min_value=2, max_value=MAX_ATTEMPTS), unit=st.floats(0.0, 0.9999999))
def test_jitter_stays_within_its_bounds(attempt: int, unit: float) -> None:
    delay = delay_before(attempt, random_unit=unit)
    nominal = SCHEDULE[attempt - 1]
    assert nominal * (1 - JITTER) <= delay <= nominal * (1 + JITTER)


def test_bad_inputs_are_bugs() -> None:
    with pytest.raises(ValueError):
        delay_before(2, random_unit=1.0)
    with pytest.raises(ValueError):
        delay_before(1, random_unit=0.5)
    with pytest.raises(ValueError):
        after_attempt(AttemptOutcome(status=500), attempt=0, finished_at=T0, random_unit=0.5)
    with pytest.raises(ValueError):
        after_attempt(AttemptOutcome(status=500), attempt=11, finished_at=T0, random_unit=0.5)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", dt.timedelta(seconds=120)),
        (" 7 ", dt.timedelta(seconds=7)),
        ("0", dt.timedelta(0)),
        ("999999999999999999999999", RETRY_AFTER_CAP),
        ("172800", RETRY_AFTER_CAP),
        ("Fri, 01 May 2026 12:30:00 GMT", dt.timedelta(minutes=30)),
        ("Fri, 01 May 2026 11:00:00 GMT", dt.timedelta(0)),
        ("Fri, 01 May 2099 11:00:00 GMT", RETRY_AFTER_CAP),
        ("Fri, 01 May 2026 12:00:10 -0000", dt.timedelta(seconds=10)),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        ("x" * 10000, None),
        (None, None),
    ],
)
def test_retry_after_is_read_as_seconds_or_an_http_date_and_capped(
    header: str | None, expected: dt.timedelta | None
) -> None:
    assert retry_after_delay(header, now=T0) == expected


def test_retry_after_only_ever_delays_the_next_attempt() -> None:
    later = after_attempt(
        AttemptOutcome(status=503, retry_after="3600"),
        attempt=2,
        finished_at=T0,
        random_unit=MIDDLE,
    )
    assert later == Retry(attempt=3, at=T0 + dt.timedelta(hours=1))
    sooner = after_attempt(
        AttemptOutcome(status=503, retry_after="1"), attempt=2, finished_at=T0, random_unit=MIDDLE
    )
    assert sooner == Retry(attempt=3, at=T0 + dt.timedelta(minutes=5))
    capped = after_attempt(
        AttemptOutcome(status=429, retry_after="99999999"), attempt=1, finished_at=T0, random_unit=0
    )
    assert isinstance(capped, Retry) and capped.at == T0 + RETRY_AFTER_CAP


def test_a_subscription_failing_five_days_straight_is_disabled() -> None:
    assert not failing_too_long(None, now=T0)
    assert not failing_too_long(T0, now=T0 + DISABLE_AFTER - dt.timedelta(seconds=1))
    assert failing_too_long(T0, now=T0 + DISABLE_AFTER)
    assert DISABLE_AFTER == dt.timedelta(days=5)
