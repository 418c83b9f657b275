"""The NATS permission model: every event type has an owner, owners match the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from contracts.envelope import registry
from services.registry import SERVICES
from shared.bus_permissions import (
    DOMAIN_OWNERS,
    OPS_USER,
    SERVICE_USERS,
    SubscriberRefused,
    check_subscriber,
    owners,
    published_subjects,
    service_permissions,
    subscriber_permissions,
    undeclared_event_types,
)

ROOT = Path(__file__).resolve().parents[2]
# Where a service package lives, by service name.
PACKAGES = {name: name.replace("-", "_") for name in SERVICES}


def test_the_service_users_are_the_services() -> None:
    assert sorted(SERVICE_USERS) == sorted(SERVICES)


def test_every_catalog_event_has_an_owner() -> None:
    assert undeclared_event_types() == []


def test_owners_are_services_or_the_operator() -> None:
    for named in DOMAIN_OWNERS.values():
        assert set(named) <= {*SERVICE_USERS, OPS_USER}


def _constructed_events(package: str) -> set[str]:
    """Event types whose payload Struct is constructed in a service package (not matched)."""
    by_class = {cls.__name__: event_type for (event_type, _), cls in registry().items()}
    found: set[str] = set()
    for path in (ROOT / "services" / package).rglob("*.py"):
        source = path.read_text()
        for name, event_type in by_class.items():
            for match in re.finditer(rf"(?<![\w.]){name}\(", source):
                line = source[: match.start()].rsplit("\n", 1)[-1]
                if line.lstrip().startswith(("case ", "class ")) or "isinstance" in line:
                    continue
                found.add(event_type)
    return found


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_a_service_may_publish_every_event_it_builds(service: str) -> None:
    # Services import only shared/ and contracts/: an event built in a package is published
    # by that service, so its NATS user must be allowed the subject.
    built = _constructed_events(PACKAGES[service])
    assert built <= set(published_subjects(service)), sorted(
        built - set(published_subjects(service))
    )


def test_the_decision_is_release_decisions_alone() -> None:
    assert owners("release.decided") == ("release-decision",)
    assert owners("scan.completed") == ("scanner",)
    for service in SERVICE_USERS:
        allowed = service_permissions(service, stream="GATEHOUSE").publish
        assert ("release.decided" in allowed) == (service == "release-decision")
        assert ">" not in allowed
        assert not any(s.startswith(("release.", "scan.")) and s.endswith(">") for s in allowed)


def test_no_service_may_delete_or_purge_the_event_stream() -> None:
    for service in SERVICE_USERS:
        allowed = service_permissions(service, stream="GATEHOUSE").publish
        assert not [s for s in allowed if ".DELETE.GATEHOUSE" in s and "CONSUMER" not in s]
        assert "$JS.API.STREAM.PURGE.GATEHOUSE" not in allowed


def test_a_subscriber_reads_only_public_subjects() -> None:
    perms = subscriber_permissions("dashboards", ["release.>", "finding.*"], stream="GATEHOUSE")
    assert set(perms.subscribe) == {"_INBOX.>", "release.>", "finding.*"}
    assert not any(s in perms.publish for s in ("release.decided", "scan.completed", ">"))
    assert "$JS.API.CONSUMER.CREATE.GATEHOUSE.dashboards.release.>" in perms.publish
    assert not perms.allow_responses


@pytest.mark.parametrize(
    ("name", "subjects"),
    [
        ("dashboards", ["apikey.>"]),
        ("dashboards", ["user.created"]),
        ("dashboards", [">"]),
        ("dashboards", ["$JS.API.>"]),
        ("dashboards", ["svc.gateway.>"]),
        ("dashboards", ["release.>.x"]),
        ("dashboards", []),
        ("gateway", ["release.>"]),
        ("ops", ["release.>"]),
        ("Bad Name", ["release.>"]),
    ],
)
def test_refused_subscribers(name: str, subjects: list[str]) -> None:
    with pytest.raises(SubscriberRefused):
        check_subscriber(name, subjects)
