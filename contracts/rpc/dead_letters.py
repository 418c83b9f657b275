"""``svc.<service>.dead_letters``: every service's outstanding dead letters.

The service kit answers it for each service (``shared/service.py``), so that a service whose
answers depend on another's read model (release-decision on the scanner's) can say it is
``degraded`` without reading that service's tables.
"""

from __future__ import annotations

import datetime as dt

import msgspec

OPERATION = "dead_letters"


class DeadLettersRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Every outstanding dead letter of the service (no parameters)."""


class DeadLetterRef(msgspec.Struct, frozen=True, kw_only=True):
    """One event a projection could not apply; ``id`` is what `gatehouse deadletters`
    takes (``<service>:<n>``)."""

    id: str
    service: str
    projection: str
    stream_sequence: int
    subject: str
    event_id: str | None = None
    error: str
    dead_lettered_at: dt.datetime


class ProjectionDeadLetters(msgspec.Struct, frozen=True, kw_only=True):
    """How many dead letters of a projection no operator has answered, and the newest."""

    projection: str
    count: int
    newest: list[DeadLetterRef]


class DeadLettersView(msgspec.Struct, frozen=True, kw_only=True):
    service: str
    projections: list[ProjectionDeadLetters]
