"""The pure parts of webhook subscriptions: what a webhook.updated sets, the ids of
Idempotency-Key commands, and secrets given or generated for a format."""

from __future__ import annotations

import pytest

from contracts.events.webhooks import WebhookUpdated
from services.webhook_fanout.domain.errors import InvalidWebhookSecret
from services.webhook_fanout.subscriptions.handlers import new_secret, new_webhook_id
from services.webhook_fanout.subscriptions.projection import updated_fields

WH = "wh_" + "a" * 32


def test_an_update_sets_only_what_it_carries() -> None:
    assert updated_fields(WebhookUpdated(id=WH, description="d")) == {"description": "d"}
    assert updated_fields(WebhookUpdated(id=WH, project_id=None)) == {"project_id": None}
    assert updated_fields(WebhookUpdated(id=WH, events=["scan.completed"])) == {
        "events": ["scan.completed"]
    }


def test_enabling_clears_the_reason_and_disabling_records_manual() -> None:
    assert updated_fields(WebhookUpdated(id=WH, enabled=True)) == {
        "enabled": True,
        "disabled_reason": None,
    }
    assert updated_fields(WebhookUpdated(id=WH, enabled=False))["disabled_reason"] == "manual"


def test_a_command_names_its_webhook_for_every_attempt() -> None:
    command = "0b6a3a1e-4d8b-5c2e-9f1a-2b3c4d5e6f70"
    assert new_webhook_id(command) == new_webhook_id(command)
    assert new_webhook_id("") != new_webhook_id("")
    assert all(len(new_webhook_id(c)) == 35 for c in ("", command))


def test_secrets_given_or_generated() -> None:
    generated = new_secret(None, format_="slack")
    assert generated.text.startswith("whsec_") and generated.standard_key is not None
    assert new_secret(None, format_="standard") != generated
    own = "receivers-own-secret"
    assert new_secret(own, format_="orbitalreg").text == own
    with pytest.raises(InvalidWebhookSecret) as caught:
        new_secret(own, format_="cloudevents")
    assert own not in caught.value.detail
    assert caught.value.extra["errors"][0]["field"] == "$.secret"
