"""The intake: every event of the stream matched to the live subscriptions and queued as
deliveries in the transaction that moves this projection's checkpoint, so an event is
queued durably before its broker message is acked.

* Events are read by their envelope alone (``decode_envelope``): an event type newer than
  this code, or one announced but not in the catalog yet, is still delivered, byte for byte
  as published.
* A subscription gets the events published after its ``webhook.created`` (``created_seq``).
  The subscriptions table is another projection's: when a batch holds a change to a
  subscription, the intake first waits for that projection to have applied it.
* Its rows are kept state (``tables`` is empty): a replay of the intake re-reads the stream
  but queues nothing at or below the highest sequence it ever applied, so nothing is sent
  twice and widening a subscription's patterns never sends it old events.
* A subscription filtered to a project gets the events naming that project and the events
  naming only a repo that the project lists (the ``projects`` projection: when a batch holds
  a ``project.created`` / ``project.updated``, the intake first waits for it likewise).
* ``webhook.deleted`` and ``webhook.disabled`` cancel what was still to be sent to the
  subscription (redeliverable by requeue or replay).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Final

import asyncpg
import msgspec

from contracts.envelope import Event, decode_envelope
from services.webhook_fanout.deliveries import store
from services.webhook_fanout.deliveries.outcomes import delivery_id, reports_on
from services.webhook_fanout.domain.matching import SubscriptionFilter, matches
from services.webhook_fanout.projects import store as projects_store
from shared.errors import GatehouseError

# The events the subscriptions projection applies to the table the intake matches against.
SUBSCRIPTION_CHANGES: Final = frozenset(
    {
        "webhook.created",
        "webhook.updated",
        "webhook.deleted",
        "webhook.disabled",
        "webhook.secret-rotated",
    }
)
# The events the projects projection applies to the repo → projects table.
PROJECT_CHANGES: Final = frozenset({"project.created", "project.updated"})
_STOPS: Final = frozenset({"webhook.deleted", "webhook.disabled"})
SUBSCRIPTIONS_WAIT_SECONDS: Final = 10.0

WaitForProjection = Callable[[int], Awaitable[None]]


class SubscriptionsBehind(GatehouseError):
    """The subscriptions (or projects) projection has not applied a change the batch depends
    on yet."""

    code, transient = "subscriptions_behind", True


class _Subject(msgspec.Struct, frozen=True):
    id: object = None
    enabled: object = None


class Intake:
    name = "intake"
    schema = store.S
    subjects: Sequence[str] | None = None
    # Kept state only (ServiceDefinition.unreplayable_tables): a replay truncates nothing.
    tables: Sequence[str] = ()

    def __init__(
        self,
        wait_for_subscriptions: WaitForProjection | None = None,
        wait_for_projects: WaitForProjection | None = None,
    ) -> None:
        self._waits = (
            (SUBSCRIPTION_CHANGES, "subscriptions", wait_for_subscriptions),
            (PROJECT_CHANGES, "projects", wait_for_projects),
        )

    def decode(self, raw: bytes, *, sequence: int) -> Event:
        return decode_envelope(raw, sequence=sequence)

    async def apply(self, conn: asyncpg.Connection, events: Sequence[Event]) -> None:
        for types, projection, wait in self._waits:
            changed = [e.sequence for e in events if e.envelope.type in types]
            if not changed or wait is None:
                continue
            try:
                await wait(max(changed))
            except TimeoutError:
                raise SubscriptionsBehind(
                    f"the {projection} projection has not reached sequence {max(changed)}"
                ) from None
        mark, subscriptions = await store.intake_state(conn)
        fresh = [e for e in events if e.sequence > mark]
        if not fresh:
            return
        for event in fresh:
            if event.envelope.type in _STOPS or _disables(event):
                subject = _subject(event)
                if isinstance(subject.id, str):
                    await store.cancel_open(conn, subject.id, before_seq=event.sequence)
        filters = {
            s.id: SubscriptionFilter(events=s.events, project=s.project_id) for s in subscriptions
        }
        # Looked up only while some subscription filters by project.
        repo_projects = (
            await projects_store.projects_of_events(conn, fresh)
            if any(s.project_id for s in subscriptions)
            else {}
        )
        queued: dict[str, store.QueuedEvent] = {}
        deliveries: list[tuple[object, str, store.QueuedEvent]] = []
        for event in fresh:
            for subscription in subscriptions:
                if subscription.created_seq >= event.sequence:
                    continue
                if not matches(
                    filters[subscription.id], event, repo_project=repo_projects.get(event.id)
                ):
                    continue
                if reports_on(event, subscription.id):
                    continue
                row = queued.get(event.id)
                if row is None:
                    row = queued[event.id] = store.QueuedEvent(
                        event_id=event.id,
                        event_type=event.envelope.type,
                        stream_seq=event.sequence,
                        occurred_at=event.envelope.occurred_at,
                        envelope=event.raw,
                    )
                deliveries.append((delivery_id(subscription.id, event.id), subscription.id, row))
        await store.queue(
            conn,
            list(queued.values()),
            deliveries,  # type: ignore[arg-type]
            high_water=fresh[-1].sequence,
        )


def _subject(event: Event) -> _Subject:
    try:
        return msgspec.json.decode(event.envelope.data, type=_Subject)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return _Subject()


def _disables(event: Event) -> bool:
    return event.envelope.type == "webhook.updated" and _subject(event).enabled is False
