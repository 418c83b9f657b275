"""The delivery engine's pure rules: delivery ids, the scaled schedule, health over a batch
of attempts, a subscription never told about its own failures, literal addresses."""

from __future__ import annotations

import datetime as dt
import uuid

from contracts.envelope import OpaquePayload, RawEnvelope, decode_envelope
from services.webhook_fanout.deliveries.client import refused_literal
from services.webhook_fanout.deliveries.outcomes import (
    delivery_id,
    health_changes,
    next_step,
    reports_on,
    state_after,
)
from services.webhook_fanout.domain.retry import AttemptOutcome, DeadLetter, Gone, Retry
from shared.outbound import parse_cidrs

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
SID = "wh_" + "a" * 32


def test_a_delivery_id_is_stable_and_distinct_per_subscription_and_event() -> None:
    assert delivery_id(SID, "e1") == delivery_id(SID, "e1")
    assert delivery_id(SID, "e1") != delivery_id(SID, "e2")
    assert delivery_id(SID, "e1") != delivery_id("wh_" + "b" * 32, "e1")
    assert delivery_id(SID, "e1").version == 5


def test_the_schedule_scales_and_outcomes_map_to_states() -> None:
    failure = AttemptOutcome(status=500)
    step = next_step(failure, attempt=2, finished_at=T0, random_unit=0.5, scale=0.001)
    assert isinstance(step, Retry) and step.at - T0 == dt.timedelta(minutes=5) * 0.001
    assert state_after(step) == "retrying"
    unscaled = next_step(failure, attempt=2, finished_at=T0, random_unit=0.5)
    assert isinstance(unscaled, Retry) and unscaled.at - T0 == dt.timedelta(minutes=5)
    last = next_step(failure, attempt=10, finished_at=T0, random_unit=0.5)
    assert isinstance(last, DeadLetter) and state_after(last) == "dead"
    gone = next_step(AttemptOutcome(status=410), attempt=1, finished_at=T0, random_unit=0.1)
    assert isinstance(gone, Gone) and state_after(gone) == "dead"
    ok = next_step(AttemptOutcome(status=204), attempt=3, finished_at=T0, random_unit=0.1)
    assert state_after(ok) == "succeeded"


def test_health_over_a_batch() -> None:
    t = [T0 + dt.timedelta(seconds=i) for i in range(5)]
    changes = {
        c.subscription_id: c
        for c in health_changes(
            [
                ("a", t[0], False),
                ("a", t[1], True),
                ("a", t[2], False),
                ("a", t[3], False),
                ("b", t[0], False),
                ("b", t[1], True),
                ("c", t[4], False),
            ]
        )
    }
    a, b, c = changes["a"], changes["b"], changes["c"]
    assert (a.last_success_at, a.last_failure_at, a.failing_since) == (t[1], t[3], t[2])
    assert (b.last_success_at, b.failing_since) == (t[1], None)
    assert (c.last_success_at, c.failing_since) == (None, t[4])


def _event(event_type: str, data: bytes) -> object:
    raw = (
        b'{"id":"e1","type":"' + event_type.encode() + b'","schema_version":1,'
        b'"occurred_at":"2026-01-01T00:00:00Z","source":"webhook-fanout",'
        b'"aggregate":"webhook:x","actor":"system","data":' + data + b"}"
    )
    return decode_envelope(raw, sequence=1)


def test_a_subscription_is_never_told_about_its_own_failures() -> None:
    own = _event("webhook.delivery-failed", b'{"id":"' + SID.encode() + b'"}')
    other = _event("webhook.disabled", b'{"id":"wh_other"}')
    unrelated = _event("webhook.created", b'{"id":"' + SID.encode() + b'"}')
    broken = _event("webhook.disabled", b"[1,2]")
    assert reports_on(own, SID)  # type: ignore[arg-type]
    assert not reports_on(other, SID)  # type: ignore[arg-type]
    assert not reports_on(unrelated, SID)  # type: ignore[arg-type]
    assert not reports_on(broken, SID)  # type: ignore[arg-type]
    assert isinstance(own.payload, OpaquePayload)  # type: ignore[attr-defined]
    assert isinstance(own.envelope, RawEnvelope)  # type: ignore[attr-defined]


def test_literal_addresses_are_judged_before_any_request() -> None:
    allowed = parse_cidrs("127.0.0.0/8")
    assert refused_literal("http://127.0.0.1:8080/x", allowed) is None
    assert refused_literal("https://example.com/x", allowed) is None  # a name: the resolver's
    assert "loopback" in (refused_literal("http://[::1]/x", allowed) or "")
    assert "metadata" in (refused_literal("http://169.254.169.254/", allowed) or "")
    assert "private" in (refused_literal("http://10.1.2.3/", ()) or "")
    assert "loopback" in (refused_literal("http://127.0.0.1/", ()) or "")
    assert uuid.UUID(str(delivery_id(SID, "x")))
