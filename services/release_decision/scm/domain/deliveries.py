"""What a webhook delivery means, as events: the common result type of the GitHub and
GitLab readers, and the errors a payload can fail with."""

from __future__ import annotations

from typing import Annotated, Literal, TypeVar

import msgspec

from contracts.envelope import EventPayload
from shared.edge_limits import refuse_too_deep
from shared.errors import BadRequest, ValidationFailed

ZERO_SHA = "0" * 40
MESSAGE_MAX = 4096
BRANCH_PREFIX = "refs/heads/"
# The bounds of ``scm.delivery-received``'s action and ``commit.pushed``'s branch.
ACTION_MAX = 100
BRANCH_MAX = 255
# A ref of a branch the events can name.
REF_MAX = len(BRANCH_PREFIX) + BRANCH_MAX
# Pull / merge request numbers as the read model keeps them (a Postgres integer).
PullNumberRead = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]

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
    # An action Gatehouse does not handle may be anything; it is recorded, cut to its bound.
    return Reading(outcome="ignored", reason=reason, action=cap_action(action), repo=repo)


def cap_action(action: str | None) -> str | None:
    # Postgres text cannot hold U+0000; an action is only recorded, so it is replaced.
    return action[:ACTION_MAX].replace("\x00", "\ufffd") if action is not None else None


def checked(reading: Reading) -> Reading:
    """``reading`` when every event in it decodes as its own type again; 422
    ``invalid_payload`` otherwise. Encoding does not check constraints, decoding does: an
    event the projections cannot decode would be dead-lettered after the delivery was
    answered as recorded (and, never recorded, it would not be de-duplicated either)."""
    for event in reading.events:
        encoded = msgspec.json.encode(event)
        if b"\\u0000" in encoded:
            # Postgres text cannot hold it: the projections would refuse the event. No Git
            # or GitHub text (a message, a branch, a title) contains one.
            raise InvalidPayload(f"the delivery makes a {event.event_type} with a NUL character")
        try:
            msgspec.json.decode(encoded, type=type(event))
        except msgspec.ValidationError as exc:
            raise InvalidPayload(
                f"the delivery makes an invalid {event.event_type}: {exc}"
            ) from exc
    return reading


def decode_payload(data: bytes, type_: type[T]) -> T:
    """The JSON body as ``type_``: 400 ``invalid_json`` when it is not JSON at all, 422
    ``invalid_payload`` naming the field when it is JSON of another shape, 422 ``too_deep``
    when it nests beyond ``MAX_JSON_DEPTH`` (decoding it would recurse out of the stack)."""
    refuse_too_deep(data)
    try:
        raw = msgspec.json.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        # msgspec raises UnicodeDecodeError (not DecodeError) for bytes that are not UTF-8.
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
