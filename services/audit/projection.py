"""Every event of the stream → ``audit.entries``, hash-chained in stream order.

The runner applies a batch in one transaction with its checkpoint, so a crash anywhere
replays the batch from the checkpoint, into a chain that does not contain it yet. Event ids
are unique as well: an event published twice (a retry outside JetStream's duplicate window)
is recorded once, at its first sequence, and the chain continues from the entry before.

Events are read by their envelope alone: an event type this code does not know, or a payload
that does not match its Struct, is still recorded. Only bytes that are not an event envelope
at all are dead-lettered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from contracts.envelope import Event, decode_envelope
from services.audit.adapters import log_store
from services.audit.domain.chain import ChainOrderError, chain, check_appendable
from services.audit.domain.entries import first_occurrences, new_entry
from services.audit.metrics import DUPLICATES_SKIPPED
from shared.errors import PermanentEventError
from shared.logging import get_logger

log = get_logger(__name__)

SCHEMA = "audit"
PROJECTION_TABLES = ("entries",)


@dataclass(eq=False)
class AuditLogProjection:
    name: str = "log"
    schema: str = SCHEMA
    subjects: Sequence[str] | None = None  # every subject of the stream
    tables: Sequence[str] = PROJECTION_TABLES

    def decode(self, raw: bytes, *, sequence: int) -> Event:
        return decode_envelope(raw, sequence=sequence)

    async def apply(self, conn: asyncpg.Connection, events: Sequence[Event]) -> None:
        entries = [new_entry(event.raw, sequence=event.sequence) for event in events]
        stored = await log_store.stored_event_ids(
            conn, [entry.columns.event_id for entry in entries]
        )
        fresh = first_occurrences(entries, stored_ids=stored)
        if len(fresh) < len(entries):
            DUPLICATES_SKIPPED.inc(len(entries) - len(fresh))
            log.info("audit_duplicates_skipped", count=len(entries) - len(fresh))
        if not fresh:
            return
        head = await log_store.head(conn)
        try:
            check_appendable(head.sequence, [entry.sequence for entry in fresh])
        except ChainOrderError as exc:
            raise PermanentEventError(str(exc)) from exc
        await log_store.append(conn, fresh, chain(head.hash, [entry.event for entry in fresh]))
