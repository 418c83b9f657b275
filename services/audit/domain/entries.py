"""How an event on the stream becomes an audit entry, and how an entry is checked against
the event it holds. Pure.

The entry keeps the event's **canonical bytes**: its JSON with sorted keys and no whitespace,
which is exactly what :func:`contracts.envelope.encode_envelope` publishes (so for our own
events they are the bytes on the stream). Bytes from any other producer are brought to that
form, so that the hash depends on the event and not on a producer's key order; bytes that do
not survive a JSON round trip (numbers beyond 64-bit floats) are kept as received. Either way
the hash is over exactly the bytes stored.

The searchable columns (type, aggregate, actor, …) are derived from those bytes, so
verification can tell when a column was changed without the event.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

import msgspec

from contracts.envelope import RawEnvelope

# Longer values are cut in the filter columns (b-tree index rows have a size limit); the
# whole value stays in the hashed event.
COLUMN_MAX_CHARS = 512
_REPLACEMENT = "\ufffd"

_canonical = msgspec.json.Encoder(order="sorted")
_envelope = msgspec.json.Decoder(RawEnvelope)


class EntryColumns(msgspec.Struct, frozen=True, kw_only=True):
    """The columns of an entry derived from its event."""

    event_id: str
    type: str
    aggregate: str
    actor: str
    source: str
    occurred_at: dt.datetime
    correlation_id: str | None
    causation_id: str | None


class NewEntry(msgspec.Struct, frozen=True, kw_only=True):
    sequence: int
    columns: EntryColumns
    event: bytes  # canonical bytes: what is stored and hashed


def canonical_event(raw: bytes) -> bytes:
    """The event's canonical JSON bytes (sorted keys, no whitespace)."""
    try:
        return _canonical.encode(msgspec.json.decode(raw))
    except (msgspec.DecodeError, msgspec.EncodeError, OverflowError):
        return raw


def _column(value: str) -> str:
    # PostgreSQL text cannot hold NUL; the exact value stays in the event.
    return value.replace("\x00", _REPLACEMENT)[:COLUMN_MAX_CHARS]


def _optional(value: str | None) -> str | None:
    return None if value is None else _column(value)


def entry_columns(event: bytes) -> EntryColumns:
    """Raises msgspec.DecodeError / ValidationError when ``event`` is no event envelope."""
    envelope = _envelope.decode(event)
    occurred_at = envelope.occurred_at
    if occurred_at.tzinfo is None:  # RFC 3339 requires an offset; read a bare time as UTC
        occurred_at = occurred_at.replace(tzinfo=dt.UTC)
    return EntryColumns(
        event_id=_column(envelope.id),
        type=_column(envelope.type),
        aggregate=_column(envelope.aggregate),
        actor=_column(envelope.actor),
        source=_column(envelope.source),
        occurred_at=occurred_at.astimezone(dt.UTC),
        correlation_id=_optional(envelope.correlation_id),
        causation_id=_optional(envelope.causation_id),
    )


def new_entry(raw: bytes, *, sequence: int) -> NewEntry:
    event = canonical_event(raw)
    return NewEntry(sequence=sequence, columns=entry_columns(event), event=event)


def first_occurrences(entries: Sequence[NewEntry], *, stored_ids: Iterable[str]) -> list[NewEntry]:
    """Entries whose event id is neither stored already nor earlier in ``entries``.

    An event published twice (a retry outside JetStream's duplicate window) reaches the
    stream twice with the same id; the log records it once, at its first sequence.
    """
    seen = set(stored_ids)
    fresh = []
    for entry in entries:
        if entry.columns.event_id in seen:
            continue
        seen.add(entry.columns.event_id)
        fresh.append(entry)
    return fresh


def columns_problem(stored: EntryColumns, event: bytes) -> str:
    """Which stored column disagrees with the event it was derived from ("" when none)."""
    try:
        expected = entry_columns(event)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return f"the event is not a valid envelope: {exc}"
    for field in msgspec.structs.fields(EntryColumns):
        if getattr(stored, field.name) != getattr(expected, field.name):
            return f"column {field.name} differs from the hashed event"
    return ""
