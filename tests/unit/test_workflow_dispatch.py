"""The GitHub dispatch shapes and the ids of the workflow triggers (pure)."""

from __future__ import annotations

import datetime as dt
import uuid

import msgspec
import pytest

from contracts.envelope import RawEnvelope
from services.webhook_fanout.domain.dispatch import (
    DispatchOptions,
    repository_dispatch_body,
    workflow_dispatch_body,
)
from services.webhook_fanout.workflows.store import outcome_event_id, target_id

DELIVERY = uuid.UUID("00000000-0000-4000-8000-000000000001")


def _envelope(data: dict[str, object]) -> RawEnvelope:
    return RawEnvelope(
        id="evt-1",
        type="deployment.requested",
        schema_version=1,
        occurred_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        source="release-decision",
        aggregate="deployment:d1",
        actor="ann",
        data=msgspec.Raw(msgspec.json.encode(data)),
    )


def test_workflow_dispatch_sends_string_inputs_it_has() -> None:
    env = _envelope({"deployment_id": "d1", "environment": "prod", "rc_number": 3, "x": True})
    body = workflow_dispatch_body(env, delivery_id=DELIVERY, options=DispatchOptions(ref="main"))
    assert body == {
        "ref": "main",
        "inputs": {
            "gatehouse_event": "deployment.requested",
            "delivery_id": str(DELIVERY),
            "deployment_id": "d1",
            "environment": "prod",
        },
    }


def test_workflow_dispatch_needs_a_ref() -> None:
    with pytest.raises(ValueError, match="ref"):
        workflow_dispatch_body(_envelope({}), delivery_id=DELIVERY, options=DispatchOptions())


def test_repository_dispatch_defaults_its_event_type_and_keeps_the_payload() -> None:
    body = repository_dispatch_body(
        _envelope({"a": 1}), delivery_id=DELIVERY, options=DispatchOptions()
    )
    encoded = msgspec.json.decode(msgspec.json.encode(body))
    assert encoded["event_type"] == "deployment.requested"
    assert encoded["client_payload"]["data"] == {"a": 1}
    assert len(encoded["client_payload"]) <= 10  # GitHub's limit


def test_ids_are_stable_and_distinct() -> None:
    assert target_id("deployment", "e1") == target_id("deployment", "e1")
    assert target_id("deployment", "e1") != target_id("build", "e1")
    assert target_id("build", "p").startswith("wh_") and len(target_id("build", "p")) == 35
    assert outcome_event_id(DELIVERY, 1) != outcome_event_id(DELIVERY, 2)
