"""The request of a delivery in each format: headers, body bytes, signatures, the Slack
rendering and its bounds."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from standardwebhooks import Webhook, WebhookVerificationError

from contracts.envelope import (
    Envelope,
    Event,
    decode_envelope,
    decode_event,
    encode_envelope,
    make_envelope,
)
from contracts.events.releases import Blocker, ReleaseDecided
from contracts.events.scans import FindingCreated
from services.webhook_fanout.domain import slack
from services.webhook_fanout.domain.formats import (
    FORMATS,
    Delivery,
    MissingKeys,
    build_request,
)
from services.webhook_fanout.domain.signing import SigningKeys, generate_secret

ROOT = Path(__file__).resolve().parents[2]

AT = dt.datetime(2026, 5, 1, 12, 0, 0, tzinfo=dt.UTC)
NEW = generate_secret(bytes(range(32)))
OLD = generate_secret(bytes(range(50, 82)))
DELIVERY_ID = uuid.UUID("0190f1c4-5a6b-7c8d-9e0f-112233445566")


def event_of(payload: Any, *, aggregate: str = "release:acme/web@abc", **extra: Any) -> Event:
    envelope = make_envelope(
        payload,
        source="release-decision",
        aggregate=aggregate,
        actor="system",
        occurred_at=AT,
        event_id="0190f1c4-0000-7000-8000-000000000001",
        **extra,
    )
    return decode_event(encode_envelope(envelope), sequence=7)


def decided(**changes: Any) -> ReleaseDecided:
    fields: dict[str, Any] = {
        "repo": "acme/web",
        "commit": "a" * 40,
        "project_id": "proj-1",
        "revision": 2,
        "decision": "NO_SHIP",
        "previous_decision": "SHIP",
        "blockers": [Blocker(code="vulnerability", message="CVE-2026-1 in lodash", ref="f-1")],
        "blocker_total": 1,
        "policy_version": 3,
        "evaluated_at": AT,
    }
    return ReleaseDecided(**(fields | changes))


def finding(**changes: Any) -> FindingCreated:
    fields: dict[str, Any] = {
        "finding_id": "f-1",
        "scan_id": "s-1",
        "project_id": "proj-1",
        "component_ref": "pkg:npm/lodash@4.17.20",
        "package": "npm:lodash",
        "version": "4.17.20",
        "ecosystem": "npm",
        "vulnerability_id": "GHSA-35jh-r3h4-6jhm",
        "advisory_ids": ["GHSA-35jh-r3h4-6jhm", "CVE-2021-23337"],
        "severity": "HIGH",
        "cvss_score": 7.2,
        "discovered_at": AT,
        "cause": "scan",
    }
    return FindingCreated(**(fields | changes))


def delivery(*, keys: SigningKeys | None = None, at: dt.datetime = AT) -> Delivery:
    return Delivery(
        delivery_id=DELIVERY_ID,
        attempted_at=at,
        version="1.2.3",
        api_base_url="https://gatehouse.example/",
        keys=keys if keys is not None else SigningKeys(NEW),
    )


def test_standard_sends_the_envelope_as_published_signed_for_this_attempt() -> None:
    event = event_of(decided())
    request = build_request(event, format="standard", delivery=delivery())
    assert request.body == event.raw
    assert request.headers["webhook-id"] == str(DELIVERY_ID)
    assert request.headers["webhook-timestamp"] == str(int(AT.timestamp()))
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == "Gatehouse-Webhooks/1.2.3"
    assert request.headers["webhook-signature"].startswith("v1,")


@pytest.mark.parametrize("format", ["standard", "cloudevents"])
def test_the_reference_verifier_accepts_signed_formats_single_and_rotating(format: str) -> None:
    now = dt.datetime.fromtimestamp(time.time(), dt.UTC)
    for keys in (SigningKeys(NEW), SigningKeys(NEW, OLD)):
        request = build_request(
            event_of(decided()), format=format, delivery=delivery(keys=keys, at=now)
        )  # type: ignore[arg-type]
        for secret in keys.standard():
            Webhook(secret.text).verify(request.body, request.headers, json_parse=False)


def test_the_same_delivery_keeps_its_id_and_a_retry_gets_a_new_timestamp() -> None:
    event = event_of(decided())
    first = build_request(event, format="standard", delivery=delivery())
    retry = build_request(
        event, format="standard", delivery=delivery(at=AT + dt.timedelta(seconds=5))
    )
    assert first.headers["webhook-id"] == retry.headers["webhook-id"]
    assert int(retry.headers["webhook-timestamp"]) - int(first.headers["webhook-timestamp"]) == 5
    assert first.body == retry.body
    assert first.headers["webhook-signature"] != retry.headers["webhook-signature"]


def test_orbitalreg_headers_and_signature() -> None:
    event = event_of(finding())
    keys = SigningKeys(NEW, OLD)
    request = build_request(event, format="orbitalreg", delivery=delivery(keys=keys))
    assert request.body == event.raw
    assert request.headers["X-Orbitalreg-Event"] == "finding.created"
    assert uuid.UUID(request.headers["X-Orbitalreg-Delivery"]) == DELIVERY_ID
    # During the grace period: one value, made with the previous secret.
    expected = "sha256=" + hmac.new(OLD.text.encode(), event.raw, hashlib.sha256).hexdigest()
    assert request.headers["X-Orbitalreg-Signature"] == expected
    assert not any(name.lower().startswith("webhook-") for name in request.headers)


def test_cloudevents_structured_mode() -> None:
    event = event_of(decided(), correlation_id="req-1")
    request = build_request(event, format="cloudevents", delivery=delivery())
    assert request.headers["Content-Type"] == "application/cloudevents+json; charset=utf-8"
    body = json.loads(request.body)
    assert body == {
        "specversion": "1.0",
        "id": event.id,
        "source": "/gatehouse/release-decision",
        "type": "release.decided",
        "time": "2026-05-01T12:00:00Z",
        "subject": "release:acme/web@abc",
        "datacontenttype": "application/json",
        "schemaversion": 1,
        "correlationid": "req-1",
        "data": json.loads(event.raw)["data"],
    }


def test_cloudevents_without_keys_is_unsigned_and_standard_needs_keys() -> None:
    unsigned = Delivery(
        delivery_id=DELIVERY_ID, attempted_at=AT, version="1", api_base_url="https://g.example"
    )
    request = build_request(event_of(decided()), format="cloudevents", delivery=unsigned)
    assert "webhook-signature" not in request.headers
    for format in ("standard", "orbitalreg"):
        with pytest.raises(MissingKeys):
            build_request(event_of(decided()), format=format, delivery=unsigned)  # type: ignore[arg-type]


def slack_of(event: Event) -> dict[str, Any]:
    request = build_request(event, format="slack", delivery=delivery())
    assert "webhook-signature" not in request.headers
    message: dict[str, Any] = json.loads(request.body)
    return message


def all_text(message: dict[str, Any]) -> str:
    return "\n".join([message["text"], *(b["text"]["text"] for b in message["blocks"])])


def test_slack_release_decided_shows_the_verdict_blockers_and_a_link() -> None:
    message = slack_of(event_of(decided()))
    assert "NO_SHIP" in message["text"] and "acme/web" in message["text"]
    text = all_text(message)
    assert "`vulnerability` CVE-2026-1 in lodash (f-1)" in text
    assert (
        "<https://gatehouse.example/api/v1/releases/decision?repo=acme%2Fweb&amp;commit="
        + "a" * 40
        + "|View the decision>"
    ) in text
    ship = all_text(slack_of(event_of(decided(decision="SHIP", blockers=[], blocker_total=0))))
    assert "SHIP" in ship and "No blockers." in ship


def test_slack_finding_created_shows_package_advisory_and_severity() -> None:
    text = all_text(slack_of(event_of(finding(), aggregate="finding:f-1")))
    assert "*HIGH*" in text
    assert "npm:lodash 4.17.20" in text
    assert "GHSA-35jh-r3h4-6jhm (GHSA-35jh-r3h4-6jhm, CVE-2021-23337)" in text
    assert "CVSS 7.2" in text
    assert "<https://gatehouse.example/api/v1/findings/f-1|View the finding>" in text


def test_slack_falls_back_to_a_generic_message_for_other_and_unknown_events() -> None:
    raw = encode_envelope(
        Envelope(
            id="e-1",
            type="artifact.uploaded",
            schema_version=1,
            occurred_at=AT,
            source="registry",
            aggregate="artifact:npm/acme/x",
            actor="apikey:k1",
            data={"project_id": "p"},
        )
    )
    message = slack_of(decode_envelope(raw, sequence=1))
    assert message["text"] == "*artifact.uploaded* · artifact:npm/acme/x"
    assert "apikey:k1" in all_text(message)
    assert "|Event catalog>" in all_text(message)


def test_slack_escapes_control_characters_so_an_event_cannot_forge_links_or_mentions() -> None:
    hostile = "<https://evil.example|click> <!channel> & <@U123>\n<!--section-->"
    message = slack_of(
        event_of(decided(blockers=[Blocker(code="vulnerability", message=hostile, ref=hostile)]))
    )
    text = all_text(message)
    assert "&lt;https://evil.example|click&gt; &lt;!channel&gt; &amp; &lt;@U123&gt;" in text
    assert "<!channel>" not in text and "<https://evil" not in text
    # Only our own link is a link.
    assert text.count("<https://") == 1


def test_slack_keeps_its_bounds_with_hundreds_of_long_blockers() -> None:
    blockers = [
        Blocker(code="vulnerability", message="x" * 5000 + str(i), ref="r" * 500)
        for i in range(500)
    ]
    message = slack_of(event_of(decided(blockers=blockers, blocker_total=900)))
    assert len(message["blocks"]) <= slack.MAX_BLOCKS
    assert len(message["text"]) <= slack.MAX_TEXT_CHARS
    for block in message["blocks"]:
        assert 0 < len(block["text"]["text"]) <= slack.MAX_TEXT_CHARS
    assert "and 880 more" in all_text(message) or "…" in all_text(message)


def test_cutting_never_splits_an_entity_or_a_link() -> None:
    text = "a" * 2990 + "&amp;&amp;&amp;"
    cut = slack._cut(text, 3000)
    assert len(cut) <= 3000 and cut.endswith("…") and not cut[:-1].endswith(("&", "&am", "&amp"))
    linked = "a" * 2980 + "<https://x.example/a/b/c|label>"
    cut = slack._cut(linked, 3000)
    assert "<" not in cut


def test_more_sections_than_slack_allows_are_summarised() -> None:
    blocks = slack._blocks([f"s{i}" for i in range(120)])
    assert len(blocks) == slack.MAX_BLOCKS
    assert blocks[-1]["text"]["text"] == "… 71 more sections not shown"


@settings(max_examples=60, deadline=None)
@given(message=st.text(max_size=4000), ref=st.one_of(st.none(), st.text(max_size=300)))
def test_slack_output_is_bounded_and_escaped_for_any_text(message: str, ref: str | None) -> None:
    event = event_of(decided(blockers=[Blocker(code="vulnerability", message=message, ref=ref)]))
    rendered = slack_of(event)
    for block in rendered["blocks"]:
        text = block["text"]["text"]
        assert 0 < len(text) <= slack.MAX_TEXT_CHARS
    blockers_text = rendered["blocks"][1]["text"]["text"]
    # The one line holding the hostile text has no raw angle brackets left.
    assert "<" not in blockers_text and ">" not in blockers_text


@pytest.mark.parametrize("format", FORMATS)
def test_every_format_builds_for_an_event_it_cannot_decode(format: str) -> None:
    raw = encode_envelope(
        Envelope(
            id="e-2",
            type="quota.exceeded",
            schema_version=1,
            occurred_at=AT,
            source="registry",
            aggregate="project:p-9",
            actor="system",
            data={"anything": [1, 2, 3]},
        )
    )
    request = build_request(decode_envelope(raw, sequence=1), format=format, delivery=delivery())  # type: ignore[arg-type]
    assert request.body
    assert request.headers["User-Agent"] == "Gatehouse-Webhooks/1.2.3"


def readme_functions() -> dict[str, Any]:
    text = (ROOT / "services/webhook_fanout/README.md").read_text()
    namespace: dict[str, Any] = {}
    for block in re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL):
        exec(compile(block, "README.md", "exec"), namespace)
    return namespace


def test_the_readme_verification_examples_verify_real_deliveries() -> None:
    examples = readme_functions()
    now = dt.datetime.fromtimestamp(time.time(), dt.UTC)
    event = event_of(decided())
    standard = build_request(
        event, format="standard", delivery=delivery(keys=SigningKeys(NEW, OLD), at=now)
    )
    assert examples["verify_standard"](standard.body, standard.headers, OLD.text)["type"] == (
        "release.decided"
    )
    with pytest.raises(WebhookVerificationError):
        examples["verify_standard"](standard.body + b" ", standard.headers, NEW.text)
    orbital = build_request(event, format="orbitalreg", delivery=delivery(keys=SigningKeys(NEW)))
    header = orbital.headers["X-Orbitalreg-Signature"]
    assert examples["verify_orbitalreg"](orbital.body, header, NEW.text)
    assert not examples["verify_orbitalreg"](orbital.body, header, OLD.text)
