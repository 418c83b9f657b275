"""What happens after an attempt: delivered, retried (when), dead-lettered, or the
subscription disabled.

The schedule is Standard Webhooks' example: attempt 1 immediately, then 5 s, 5 min, 30 min,
2 h, 5 h, 10 h, 14 h, 20 h and 24 h after the previous failure (ten attempts over about
three days), each delay stretched or shrunk by up to ``JITTER`` at random so that receivers
recovering from an outage are not hit by every retry at once. A ``Retry-After`` (seconds or
an HTTP-date) can only push the next attempt later, never sooner, and at most
``RETRY_AFTER_CAP`` away.

Outcomes: 2xx is success; ``410 Gone`` disables the subscription at once (the receiver said
it wants nothing more); every other status (3xx included: redirects are not followed),
a timeout or a connection error is a failure, retried until the last attempt, after which
the delivery is dead-lettered. A subscription whose deliveries have failed for
``DISABLE_AFTER`` straight (no success since its first failure) is disabled.
"""

from __future__ import annotations

import datetime as dt
import email.utils
from typing import Final, Literal

import msgspec

SCHEDULE: Final[tuple[dt.timedelta, ...]] = (
    dt.timedelta(0),
    dt.timedelta(seconds=5),
    dt.timedelta(minutes=5),
    dt.timedelta(minutes=30),
    dt.timedelta(hours=2),
    dt.timedelta(hours=5),
    dt.timedelta(hours=10),
    dt.timedelta(hours=14),
    dt.timedelta(hours=20),
    dt.timedelta(hours=24),
)
MAX_ATTEMPTS: Final = len(SCHEDULE)
# ±20 %: spreads a burst of retries over minutes at the long steps, keeps the order of steps.
JITTER: Final = 0.2
# A receiver may ask for a pause, not for its deliveries to stop: that is what 410 is for.
RETRY_AFTER_CAP: Final = dt.timedelta(hours=24)
DISABLE_AFTER: Final = dt.timedelta(days=5)

Classification = Literal["success", "gone", "failure"]
TransportError = Literal["timeout", "connection", "response_too_large", "refused_address"]


class AttemptOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What one HTTP attempt came to: a response ``status`` (with its ``Retry-After``
    header, if any), or a transport ``error`` and no status."""

    status: int | None = None
    error: TransportError | None = None
    retry_after: str | None = None


class Delivered(msgspec.Struct, frozen=True, tag="delivered"):
    pass


class Gone(msgspec.Struct, frozen=True, tag="gone"):
    """410: disable the subscription now; the delivery is dead-lettered (redeliverable)."""


class Retry(msgspec.Struct, frozen=True, kw_only=True, tag="retry"):
    attempt: int
    at: dt.datetime


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True, tag="dead_letter"):
    attempts: int


Next = Delivered | Gone | Retry | DeadLetter


def classify(outcome: AttemptOutcome) -> Classification:
    if outcome.status is not None and 200 <= outcome.status <= 299:
        return "success"
    if outcome.status == 410:
        return "gone"
    return "failure"


def retry_after_delay(value: str | None, *, now: dt.datetime) -> dt.timedelta | None:
    """A ``Retry-After`` header as a delay from ``now``, capped at ``RETRY_AFTER_CAP``; None
    when absent or unreadable (an unreadable header is ignored, as HTTP says)."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        # More digits than a day's seconds need can only mean "the cap".
        seconds = int(text) if len(text) <= 9 else int(RETRY_AFTER_CAP.total_seconds())
        return min(dt.timedelta(seconds=seconds), RETRY_AFTER_CAP)
    if len(text) > 64:
        return None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": UTC by RFC 5322
        when = when.replace(tzinfo=dt.UTC)
    return min(max(when - now, dt.timedelta(0)), RETRY_AFTER_CAP)


def delay_before(attempt: int, *, random_unit: float) -> dt.timedelta:
    """The wait before ``attempt`` (2..MAX_ATTEMPTS) after the previous one failed, with
    jitter from ``random_unit`` in [0, 1): 0 shrinks it by ``JITTER``, 0.5 keeps it."""
    if not 2 <= attempt <= MAX_ATTEMPTS:
        raise ValueError(f"attempt {attempt} has no delay (attempts are 1 to {MAX_ATTEMPTS})")
    if not 0.0 <= random_unit < 1.0:
        raise ValueError("random_unit must be in [0, 1)")
    return SCHEDULE[attempt - 1] * (1.0 + JITTER * (2.0 * random_unit - 1.0))


def after_attempt(
    outcome: AttemptOutcome, *, attempt: int, finished_at: dt.datetime, random_unit: float
) -> Next:
    """What follows attempt number ``attempt`` (1-based) that ended at ``finished_at``."""
    if not 1 <= attempt <= MAX_ATTEMPTS:
        raise ValueError(f"attempt must be 1 to {MAX_ATTEMPTS}, got {attempt}")
    verdict = classify(outcome)
    if verdict == "success":
        return Delivered()
    if verdict == "gone":
        return Gone()
    if attempt == MAX_ATTEMPTS:
        return DeadLetter(attempts=attempt)
    delay = delay_before(attempt + 1, random_unit=random_unit)
    asked = retry_after_delay(outcome.retry_after, now=finished_at)
    if asked is not None and asked > delay:
        delay = asked
    return Retry(attempt=attempt + 1, at=finished_at + delay)


def failing_too_long(first_failure_at: dt.datetime | None, *, now: dt.datetime) -> bool:
    """Whether a subscription failing since ``first_failure_at`` (the first failure after
    its last success; None when its last attempt succeeded) is to be disabled."""
    return first_failure_at is not None and now - first_failure_at >= DISABLE_AFTER
