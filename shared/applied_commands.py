"""``<schema>.applied_commands``: which client commands a projection has applied.

A command (a request with an ``Idempotency-Key``, see ``shared.commands``) stamps its
``command_id`` on every event it publishes. The projection runner records, in the same
transaction as the rows it changes, the first event of each command it applies: so a re-run
of that command, after a crash anywhere, finds what the first attempt did (the aggregate it
created, the stream sequence) however long ago that was, even after JetStream's duplicate
window. Rebuilt like any read model: ``gatehouse replay`` empties it and replays it.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import msgspec

from contracts.envelope import Event


class AppliedCommand(msgspec.Struct, frozen=True, kw_only=True):
    """The first event of a command that a projection applied."""

    command_id: str
    event_id: str
    event_type: str
    aggregate: str
    stream_sequence: int

    @property
    def aggregate_id(self) -> str:
        """The id in ``<kind>:<id>`` (the resource a create made)."""
        return self.aggregate.partition(":")[2]


async def record(
    conn: asyncpg.Connection, *, schema: str, projection: str, events: Sequence[Event]
) -> None:
    """Record the commands of ``events`` (inside the projection's transaction)."""
    rows = [
        (
            projection,
            event.envelope.command_id,
            event.id,
            event.type,
            event.envelope.aggregate,
            event.sequence,
        )
        for event in events
        if event.envelope.command_id
    ]
    if rows:
        # The first event of a command wins: a command's later events, and an event the
        # stream holds twice (re-published outside the duplicate window), change nothing.
        await conn.executemany(
            f'INSERT INTO "{schema}".applied_commands (projection, command_id, event_id, '
            "event_type, aggregate, stream_sequence) VALUES ($1, $2, $3, $4, $5, $6) "
            "ON CONFLICT (projection, command_id) DO NOTHING",
            rows,
        )


async def find(
    db: asyncpg.Pool | asyncpg.Connection, *, schema: str, projection: str, command_id: str
) -> AppliedCommand | None:
    row = await db.fetchrow(
        f'SELECT command_id, event_id, event_type, aggregate, stream_sequence FROM "{schema}".'
        "applied_commands WHERE projection = $1 AND command_id = $2",
        projection,
        command_id,
    )
    return AppliedCommand(**dict(row)) if row is not None else None


async def forget(conn: asyncpg.Connection, *, schema: str, projection: str) -> None:
    """Empty a projection's record before it is replayed from sequence 0."""
    await conn.execute(f'DELETE FROM "{schema}".applied_commands WHERE projection = $1', projection)
