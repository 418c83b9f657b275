"""Event patterns against the catalog, what an event says about its project, and matching."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.envelope import (
    Envelope,
    Event,
    decode_envelope,
    decode_event,
    encode_envelope,
    registry,
)
from services.webhook_fanout.domain.errors import InvalidEventPattern
from services.webhook_fanout.domain.matching import (
    MAX_PATTERNS,
    UPCOMING_EVENT_TYPES,
    EventProject,
    SubscriptionFilter,
    check_pattern,
    check_patterns,
    known_event_types,
    matches,
    project_of,
)

AT = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)


def raw_event(event_type: str, data: Any, *, aggregate: str = "thing:1") -> Event:
    raw = encode_envelope(
        Envelope(
            id="e-1",
            type=event_type,
            schema_version=1,
            occurred_at=AT,
            source="test",
            aggregate=aggregate,
            actor="system",
            data=data,
        )
    )
    return decode_envelope(raw, sequence=1)


@pytest.mark.parametrize(
    "pattern",
    [
        "finding.created",
        "release.decided",
        "deployment.*",
        "scan.findings-announced",
        "artifact.*",
        "artifact.uploaded",
        "block.hit",
        "quota.exceeded",
        "retention.deleted",
        "webhook.test",
        "webhook.*",
    ],
)
def test_catalog_and_upcoming_patterns_are_accepted(pattern: str) -> None:
    assert check_pattern(pattern) == pattern


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        ("finding.exploded", "not an event of the catalog"),
        ("nosuch.*", "no event of the catalog"),
        ("*", "not an event type"),
        ("finding", "not an event type"),
        ("finding.*.created", "not an event type"),
        ("Finding.Created", "not an event type"),
        ("finding.created\x00", "not an event type"),
        ("a" * 10_000, "not an event type"),
        ("", "not an event type"),
    ],
)
def test_unknown_patterns_are_refused(pattern: str, fragment: str) -> None:
    with pytest.raises(InvalidEventPattern) as caught:
        check_pattern(pattern)
    assert fragment in caught.value.detail
    assert caught.value.code == "unknown_event_type"
    assert len(caught.value.detail) < 300


def test_every_registered_event_is_known() -> None:
    registered = {event_type for event_type, _ in registry()}
    assert registered <= known_event_types()
    assert UPCOMING_EVENT_TYPES <= known_event_types()
    for event_type in registered:
        check_pattern(event_type)
        check_pattern(event_type.split(".")[0] + ".*")


def test_pattern_lists_are_deduplicated_bounded_and_not_empty() -> None:
    assert check_patterns(["finding.created", "artifact.*", "finding.created"]) == (
        "finding.created",
        "artifact.*",
    )
    with pytest.raises(InvalidEventPattern, match="at least one"):
        check_patterns([])
    assert len(check_patterns(["finding.created"] * MAX_PATTERNS)) == 1
    with pytest.raises(InvalidEventPattern, match="at most 100"):
        check_patterns(["finding.created"] * (MAX_PATTERNS + 1))


@pytest.mark.parametrize(
    ("event_type", "data", "aggregate", "expected"),
    [
        ("finding.created", {"project_id": "p1"}, "finding:f", EventProject(project_id="p1")),
        ("commit.verified", {"repo": "acme/web"}, "commit:x", EventProject(repo="acme/web")),
        (
            "release.decided",
            {"repo": "acme/web", "project_id": "p1"},
            "r:1",
            EventProject(project_id="p1", repo="acme/web"),
        ),
        ("project.updated", {}, "project:p7", EventProject(project_id="p7")),
        ("artifact.uploaded", {"project_id": 12}, "artifact:x", EventProject()),
        ("quota.exceeded", None, "quota:1", EventProject()),
        ("quota.exceeded", [1, 2], "quota:1", EventProject()),
        ("vulndb.updated", {"source": "osv"}, "vulndb:osv", EventProject()),
        ("policy.changed", {"project_id": None}, "policy:org", EventProject()),
    ],
)
def test_project_of(event_type: str, data: Any, aggregate: str, expected: EventProject) -> None:
    assert project_of(raw_event(event_type, data, aggregate=aggregate)) == expected


def test_project_of_a_decoded_catalog_event() -> None:
    from contracts.envelope import make_envelope
    from contracts.events.scans import FindingThresholdExceeded

    payload = FindingThresholdExceeded(
        finding_id="f", scan_id="s", project_id="p2", vulnerability_id="v", epss=0.9, threshold=0.5
    )
    envelope = make_envelope(
        payload, source="scanner", aggregate="finding:f", actor="system", occurred_at=AT
    )
    event = decode_event(encode_envelope(envelope), sequence=3)
    assert project_of(event) == EventProject(project_id="p2")


def test_matching_by_type_project_repo_and_enabled() -> None:
    finding = raw_event("finding.created", {"project_id": "p1"})
    commit = raw_event("commit.verified", {"repo": "acme/web"})
    backup = raw_event("backup.completed", {})
    every_finding = SubscriptionFilter(events=("finding.*",))
    assert matches(every_finding, finding)
    assert not matches(every_finding, commit)
    assert not matches(SubscriptionFilter(events=("finding.*",), enabled=False), finding)
    assert matches(SubscriptionFilter(events=("finding.created",), project="p1"), finding)
    assert not matches(SubscriptionFilter(events=("finding.created",), project="p2"), finding)
    by_repo = SubscriptionFilter(events=("commit.verified",), project="acme/web")
    assert matches(by_repo, commit)
    by_project = SubscriptionFilter(events=("commit.verified",), project="p1")
    assert not matches(by_project, commit)
    assert matches(by_project, commit, repo_project="p1")
    # A repo may be listed by several projects; an event naming its project keeps it.
    assert matches(by_project, commit, repo_project=frozenset({"p2", "p1"}))
    assert not matches(by_project, commit, repo_project=frozenset({"p2"}))
    assert not matches(
        by_project,
        raw_event("commit.verified", {"repo": "acme/web", "project_id": "p2"}),
        repo_project="p1",
    )
    # An event that names no project reaches only unfiltered subscriptions.
    assert matches(SubscriptionFilter(events=("backup.*",)), backup)
    assert not matches(SubscriptionFilter(events=("backup.*",), project="p1"), backup)
    # A domain pattern is not a prefix of another domain.
    assert not matches(SubscriptionFilter(events=("scan.*",)), raw_event("scanner.x", {}))


@given(event_type=st.sampled_from(sorted(known_event_types())))
def test_a_domain_pattern_matches_exactly_its_domain(event_type: str) -> None:
    event = raw_event(event_type, {})
    domain = event_type.split(".")[0]
    for other in sorted(known_event_types()):
        pattern = other.split(".")[0] + ".*"
        assert matches(SubscriptionFilter(events=(pattern,)), event) == (pattern == domain + ".*")
    assert matches(SubscriptionFilter(events=(event_type,)), event)
