"""Pure rules of the delivery engine around the domain's retry schedule: delivery ids, what
an attempt leaves a delivery in, how a batch of attempts moves a subscription's health, and
which events a subscription never gets. No I/O, no clock, no randomness (passed in)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

import msgspec

from contracts.envelope import Event
from services.webhook_fanout.domain.retry import (
    AttemptOutcome,
    DeadLetter,
    Delivered,
    Gone,
    Next,
    Retry,
    after_attempt,
)

# Fixed forever: delivery ids are the receivers' dedup keys across restarts and replays.
DELIVERY_NAMESPACE: Final = uuid.UUID("5b0e7e2a-6c1f-4f4e-9d51-3f1c0a8e7d21")
# Events about a subscription's own deliveries are never delivered to it: a receiver that
# fails would otherwise be sent the news of its failure, fail that too, and so on forever.
_SELF_REPORTS: Final = frozenset({"webhook.delivery-failed", "webhook.disabled"})

DeliveryState = Literal["succeeded", "retrying", "dead"]


def delivery_id(subscription_id: str, event_id: str) -> uuid.UUID:
    """The one id of an event's delivery to a subscription, on every attempt and replay."""
    return uuid.uuid5(DELIVERY_NAMESPACE, f"{subscription_id}/{event_id}")


class _About(msgspec.Struct, frozen=True):
    id: object = None


def reports_on(event: Event, subscription_id: str) -> bool:
    """Whether ``event`` is the fan-out's own report on ``subscription_id``'s deliveries."""
    if event.envelope.type not in _SELF_REPORTS:
        return False
    try:
        about = msgspec.json.decode(event.envelope.data, type=_About)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return False
    return about.id == subscription_id


def next_step(
    outcome: AttemptOutcome,
    *,
    attempt: int,
    finished_at: dt.datetime,
    random_unit: float,
    scale: float = 1.0,
) -> Next:
    """:func:`after_attempt`, with every wait multiplied by ``scale`` (tests shorten the
    three-day schedule; 1.0 is the schedule itself)."""
    step = after_attempt(outcome, attempt=attempt, finished_at=finished_at, random_unit=random_unit)
    if isinstance(step, Retry) and scale != 1.0:
        return Retry(attempt=step.attempt, at=finished_at + (step.at - finished_at) * scale)
    return step


def state_after(step: Next) -> DeliveryState:
    if isinstance(step, Delivered):
        return "succeeded"
    if isinstance(step, Retry):
        return "retrying"
    assert isinstance(step, Gone | DeadLetter)
    return "dead"


@dataclass(frozen=True, slots=True)
class HealthChange:
    """What a batch of attempts of one subscription says about its receiver.

    ``failing_since`` is the first failure after the batch's last success (None when the
    batch ended with a success); when the batch holds no success, the stored
    ``failing_since`` (if any) stands and this one only fills it in."""

    subscription_id: str
    last_success_at: dt.datetime | None
    last_failure_at: dt.datetime | None
    failing_since: dt.datetime | None


def health_changes(
    attempts: Iterable[tuple[str, dt.datetime, bool]],
) -> list[HealthChange]:
    """From ``(subscription_id, finished_at, succeeded)`` in the order they happened."""
    found: dict[str, list[dt.datetime | None]] = {}
    for subscription_id, at, ok in attempts:
        success, failure, since = found.setdefault(subscription_id, [None, None, None])
        if ok:
            found[subscription_id] = [at, failure, None]
        else:
            found[subscription_id] = [success, at, since or at]
    return [
        HealthChange(subscription_id=sid, last_success_at=s, last_failure_at=f, failing_since=since)
        for sid, (s, f, since) in found.items()
    ]
