"""The ``subscriptions`` projection: ``webhook.*`` configuration events → ``subscriptions``.

* ``webhook.created`` inserts the row (revision 1, ``created_seq`` its stream sequence:
  deliveries start after it);
* ``webhook.updated`` sets the fields it carries; ``enabled: false`` records the reason
  ``manual``, ``enabled: true`` clears whatever reason there was;
* ``webhook.secret-rotated`` moves to the new secret version and records until when the
  previous one still signs;
* ``webhook.disabled`` (from the delivery sender: ``410 Gone``, five days of failures) turns
  the subscription off with its reason;
* ``webhook.deleted`` marks it deleted (the row stays, so delivery history keeps its owner).

Every change is a new revision at the event's time, so a replay gives identical rows. The
secrets are not here: they never travel on the bus (``store.signing_secrets``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg
import msgspec

from contracts.envelope import Event
from contracts.events.webhooks import (
    WebhookCreated,
    WebhookDeleted,
    WebhookDisabled,
    WebhookSecretRotated,
    WebhookUpdated,
)
from services.webhook_fanout.subscriptions import store

SUBJECTS = (
    "webhook.created",
    "webhook.updated",
    "webhook.deleted",
    "webhook.secret-rotated",
    "webhook.disabled",
)
_PATCHABLE = ("url", "events", "project_id", "description", "enabled", "format")


def updated_fields(payload: WebhookUpdated) -> dict[str, object]:
    """The columns a ``webhook.updated`` sets."""
    changes: dict[str, object] = {}
    for name in _PATCHABLE:
        value = getattr(payload, name)
        if value is not msgspec.UNSET:
            changes[name] = list(value) if name == "events" else value
    if "enabled" in changes:
        changes["disabled_reason"] = None if changes["enabled"] else "manual"
    return changes


@dataclass(eq=False)
class SubscriptionsProjection:
    name: str = "subscriptions"
    schema: str = store.SCHEMA
    subjects: Sequence[str] | None = SUBJECTS
    tables: Sequence[str] = field(default=store.PROJECTION_TABLES)

    async def apply(self, conn: asyncpg.Connection, events: Sequence[Event]) -> None:
        for event in events:
            await self._apply(conn, event)

    async def _apply(self, conn: asyncpg.Connection, event: Event) -> None:
        payload, at = event.payload, event.envelope.occurred_at
        if isinstance(payload, WebhookCreated):
            await store.insert_subscription(conn, payload, at=at, seq=event.sequence)
        elif isinstance(payload, WebhookUpdated):
            await store.change_subscription(conn, payload.id, updated_fields(payload), at=at)
        elif isinstance(payload, WebhookSecretRotated):
            await store.change_subscription(
                conn,
                payload.id,
                {
                    "secret_version": payload.secret_version,
                    "previous_valid_until": payload.previous_valid_until,
                },
                at=at,
            )
        elif isinstance(payload, WebhookDisabled):
            await store.change_subscription(
                conn, payload.id, {"enabled": False, "disabled_reason": payload.reason}, at=at
            )
        elif isinstance(payload, WebhookDeleted):
            await store.change_subscription(conn, payload.id, {"deleted_at": at}, at=at)
