"""Which subscriptions an event goes to: event patterns and the project filter.

A pattern is an exact event type (``finding.created``) or a whole domain (``artifact.*``),
checked against the event catalog (``contracts.envelope.registry``) plus the events that are
promised but not yet published (``UPCOMING_EVENT_TYPES``): a subscription to them is accepted
now and receives them once they are published.

The project filter compares with what an event says about its project
(:func:`project_of`): its payload's ``project_id``, an aggregate ``project:<id>``, or its
``repo`` (``owner/name``), or, for an event that names only its repo, the projects that list
that repo (``repo_project``: the fan-out's ``projects`` read model). An event that names no
project reaches only subscriptions without a filter: a filtered subscription receives nothing
it cannot tell belongs to its project.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from typing import Any, Final

import msgspec

from contracts import events as _events  # noqa: F401  (registers the catalog)
from contracts.envelope import Event, registry

from .errors import InvalidEventPattern

# Published by the registry (artifact events) and by webhook-fanout itself (webhook.test)
# once they land; subscribers may ask for them already.
UPCOMING_EVENT_TYPES: Final = frozenset(
    {
        "artifact.uploaded",
        "artifact.promoted",
        "artifact.deleted",
        "block.created",
        "block.hit",
        "retention.deleted",
        "quota.exceeded",
        "webhook.test",
    }
)
MAX_PATTERNS: Final = 100
_WILDCARD = ".*"
# A catalog name: <domain>.<event>, lower case, digits and dashes (see contracts/events).
_PATTERN_SHAPE = re.compile(r"[a-z][a-z0-9-]{0,62}\.(?:\*|[a-z][a-z0-9-]{0,62})")


def known_event_types() -> frozenset[str]:
    return frozenset(event_type for event_type, _ in registry()) | UPCOMING_EVENT_TYPES


def known_domains() -> frozenset[str]:
    return frozenset(event_type.split(".", 1)[0] for event_type in known_event_types())


def check_pattern(pattern: str) -> str:
    """``pattern`` when it names a known event type or domain; :class:`InvalidEventPattern`
    otherwise, saying which."""
    if not isinstance(pattern, str) or not _PATTERN_SHAPE.fullmatch(pattern):
        shown = pattern[:100] if isinstance(pattern, str) else type(pattern).__name__
        raise InvalidEventPattern(
            f"{shown!r} is not an event type (<domain>.<event>) or a domain (<domain>.*)"
        )
    if pattern.endswith(_WILDCARD):
        domain = pattern[: -len(_WILDCARD)]
        if domain not in known_domains():
            raise InvalidEventPattern(f"{pattern!r}: no event of the catalog is in {domain!r}")
    elif pattern not in known_event_types():
        raise InvalidEventPattern(f"{pattern!r} is not an event of the catalog")
    return pattern


def check_patterns(patterns: Iterable[str]) -> tuple[str, ...]:
    """The patterns of a subscription, checked, without repeats, in the order given."""
    given = list(patterns)
    if len(given) > MAX_PATTERNS:
        raise InvalidEventPattern(f"a subscription lists at most {MAX_PATTERNS} patterns")
    checked = {check_pattern(pattern): None for pattern in given}
    if not checked:
        raise InvalidEventPattern("a subscription lists at least one event pattern")
    return tuple(checked)


def type_matches(pattern: str, event_type: str) -> bool:
    if pattern.endswith(_WILDCARD):
        return event_type.startswith(pattern[:-1])
    return event_type == pattern


class EventProject(msgspec.Struct, frozen=True, kw_only=True):
    """What an event says about the project it belongs to; None where it says nothing."""

    project_id: str | None = None
    repo: str | None = None


class _ProjectFields(msgspec.Struct, frozen=True):
    # Any: a payload off its schema (a number where a string belongs) still tells its type.
    project_id: Any = None
    repo: Any = None


_PROJECT_AGGREGATE = "project:"


def project_of(event: Event) -> EventProject:
    """From the payload as published (so it works for event types this code does not know):
    ``project_id`` (most scan, finding, release, deployment and policy events), otherwise a
    ``project:<id>`` aggregate; and ``repo`` (commit, scm, mirror and release events)."""
    try:
        fields = msgspec.json.decode(event.envelope.data, type=_ProjectFields)
    except (msgspec.ValidationError, msgspec.DecodeError):
        fields = _ProjectFields()
    project_id = fields.project_id if isinstance(fields.project_id, str) else None
    aggregate = event.envelope.aggregate
    if not project_id and aggregate.startswith(_PROJECT_AGGREGATE):
        project_id = aggregate[len(_PROJECT_AGGREGATE) :]
    repo = fields.repo if isinstance(fields.repo, str) else None
    return EventProject(project_id=project_id or None, repo=repo or None)


class SubscriptionFilter(msgspec.Struct, frozen=True, kw_only=True):
    """What a subscription receives. ``project`` is a project id or a repo ``owner/name``."""

    events: tuple[str, ...]
    project: str | None = None
    enabled: bool = True


def matches(
    subscription: SubscriptionFilter,
    event: Event,
    *,
    repo_project: str | Collection[str] | None = None,
) -> bool:
    """Whether ``event`` is delivered to ``subscription``. ``repo_project`` is the project
    (or the projects) the caller knows the event's repo belongs to (from its read model),
    for events that name a repo but not a project."""
    if not subscription.enabled:
        return False
    if not any(type_matches(pattern, event.envelope.type) for pattern in subscription.events):
        return False
    if subscription.project is None:
        return True
    named = project_of(event)
    if subscription.project in {named.project_id, named.repo}:
        return True
    if named.project_id is not None or repo_project is None:
        return False
    if isinstance(repo_project, str):
        return subscription.project == repo_project
    return subscription.project in repo_project
