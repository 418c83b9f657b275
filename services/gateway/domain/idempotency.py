"""Idempotency-Key decisions: start, replay, or refuse (reused key / still running)."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from enum import Enum

from services.gateway.domain.errors import FieldInvalid

# Headers of a stored response that a replay repeats.
REPLAYED_HEADERS = ("Content-Type", "ETag", "Location")
_KEY_SHAPE = re.compile(r"^[\x21-\x7e]{1,255}$")  # visible ASCII, as the IETF draft suggests


class Outcome(Enum):
    START = "start"
    REPLAY = "replay"
    REUSED = "reused"
    IN_PROGRESS = "in_progress"
    # The first attempt's process died while running it: run the request again (the same
    # command: the owner answers what that attempt did, if it did anything).
    TAKE_OVER = "take_over"


@dataclass(frozen=True, kw_only=True)
class Attempt:
    fingerprint: str
    running: bool
    started_at: dt.datetime
    expires_at: dt.datetime
    # Whether the gateway process running it is still alive (None: not known).
    holder_alive: bool | None = None
    # The instance id of the gateway process that runs it.
    held_by: str | None = None


def check_key(key: str) -> str:
    if not _KEY_SHAPE.match(key):
        raise FieldInvalid(
            "Idempotency-Key",
            "must be 1 to 255 visible ASCII characters",
            code="invalid_idempotency_key",
        )
    return key


def fingerprint(*, method: str, path: str, query: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), query.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def decide(
    existing: Attempt | None, *, fingerprint: str, now: dt.datetime, stale_after: dt.timedelta
) -> Outcome:
    if existing is None or existing.expires_at <= now:
        return Outcome.START
    if existing.fingerprint != fingerprint:
        return Outcome.REUSED
    if existing.running:
        if existing.holder_alive is False or now - existing.started_at > stale_after:
            return Outcome.TAKE_OVER
        return Outcome.IN_PROGRESS
    return Outcome.REPLAY
