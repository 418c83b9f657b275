"""What a webhook delivery means, as events: the common result type of the GitHub and
GitLab readers, and the errors a payload can fail with."""

from __future__ import annotations

import datetime as dt
from typing import Literal, TypeVar

import msgspec

from contracts.envelope import EventPayload
from shared.errors import BadRequest, ValidationFailed

ZERO_SHA = "0" * 40
MESSAGE_MAX = 4096
BRANCH_PREFIX = "refs/heads/"

T = TypeVar("T")


class InvalidJson(BadRequest):
    code, title = "invalid_json", "The webhook body is not JSON"


class InvalidPayload(ValidationFailed):
    code, title = "invalid_payload", "The webhook payload does not have the expected shape"


class Reading(msgspec.Struct, frozen=True, kw_only=True):
    """A delivery read: the events to publish (in order), or why there are none."""

    outcome: Literal["recorded", "pong", "ignored"]
    action: str | None = None
    repo: str | None = None
    reason: str | None = None
    events: tuple[EventPayload, ...] = ()


def ignored(reason: str, *, action: str | None = None, repo: str | None = None) -> Reading:
    return Reading(outcome="ignored", reason=reason, action=action, repo=repo)


def decode_payload(data: bytes, type_: type[T]) -> T:
    """The JSON body as ``type_``: 400 ``invalid_json`` when it is not JSON at all, 422
    ``invalid_payload`` naming the field when it is JSON of another shape."""
    try:
        raw = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise InvalidJson(f"the body is not JSON: {exc}") from exc
    try:
        return msgspec.convert(raw, type_)
    except msgspec.ValidationError as exc:
        raise InvalidPayload(str(exc)) from exc


def branch_of(ref: str) -> str | None:
    """``refs/heads/<branch>`` → the branch; a tag or anything else → None."""
    if ref.startswith(BRANCH_PREFIX) and len(ref) > len(BRANCH_PREFIX):
        return ref[len(BRANCH_PREFIX) :]
    return None


def capped(message: str) -> str:
    return message[:MESSAGE_MAX]


def utc(at: dt.datetime) -> dt.datetime:
    return at.astimezone(dt.UTC)
