"""The audit log's pure rules: the hash chain, canonical event bytes, entry columns, CSV."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.envelope import encode_envelope, make_envelope
from contracts.events.identity import ProjectCreated, ProjectUpdated
from contracts.rpc.audit import AuditEntry, window_problem
from services.audit.domain.chain import (
    GENESIS_HASH,
    ChainOrderError,
    chain,
    check_appendable,
    link_hash,
    verify_chain,
)
from services.audit.domain.entries import (
    COLUMN_MAX_CHARS,
    canonical_event,
    columns_problem,
    entry_columns,
    first_occurrences,
    new_entry,
)
from services.gateway.domain.audit_csv import COLUMNS, csv_text, spreadsheet_safe

AT = dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC)


class Row(msgspec.Struct, frozen=True):
    sequence: int
    prev_hash: bytes
    hash: bytes
    event: bytes


def _event(n: int, **changes: object) -> bytes:
    envelope = make_envelope(
        ProjectCreated(project_id=f"p{n}", slug=f"p-{n}", name=f"Project {n}"),
        source="gateway",
        aggregate=f"project:p{n}",
        actor="apikey:k1",
        occurred_at=AT,
        event_id=f"0190-{n:04d}",
        correlation_id=f"req-{n}",
    )
    return encode_envelope(msgspec.structs.replace(envelope, **changes))


def _rows(events: list[bytes], *, start: int = 1) -> list[Row]:
    links = chain(GENESIS_HASH, events)
    return [
        Row(start + i, link.prev_hash, link.hash, event)
        for i, (event, link) in enumerate(zip(events, links, strict=True))
    ]


# ---- the chain -------------------------------------------------------------------------------
def test_link_is_sha256_of_previous_hash_then_event_bytes() -> None:
    event = b'{"id":"x"}'
    assert GENESIS_HASH == b"\x00" * 32
    assert link_hash(GENESIS_HASH, event) == hashlib.sha256(b"\x00" * 32 + event).digest()
    with pytest.raises(ValueError, match="32 bytes"):
        link_hash(b"short", event)


def test_chain_threads_each_hash_into_the_next_link() -> None:
    events = [b"a", b"b", b"c"]
    links = chain(GENESIS_HASH, events)
    assert links[0].prev_hash == GENESIS_HASH
    assert [link.prev_hash for link in links[1:]] == [link.hash for link in links[:-1]]
    # Appending in two batches gives the same chain as in one.
    first = chain(GENESIS_HASH, events[:1])
    assert first + chain(first[-1].hash, events[1:]) == links
    assert chain(GENESIS_HASH, []) == []


def test_a_sound_chain_verifies() -> None:
    rows = _rows([_event(n) for n in range(5)])
    verdict = verify_chain(rows)
    assert verdict.ok and verdict.checked == 5
    assert (verdict.last_sequence, verdict.last_hash) == (5, rows[-1].hash)
    empty = verify_chain([])
    assert empty.ok and empty.checked == 0 and empty.last_hash == GENESIS_HASH


def test_a_changed_event_is_found_at_its_own_entry() -> None:
    rows = _rows([_event(n) for n in range(5)])
    rows[2] = msgspec.structs.replace(rows[2], event=rows[2].event.replace(b"p-2", b"p-9"))
    verdict = verify_chain(rows)
    assert not verdict.ok
    assert (verdict.first_bad_sequence, verdict.checked) == (3, 3)
    assert verdict.problem and "hash does not match" in verdict.problem
    assert (verdict.last_sequence, verdict.last_hash) == (2, rows[1].hash)


def test_a_rehashed_entry_is_found_at_the_next_one() -> None:
    rows = _rows([_event(n) for n in range(4)])
    forged = rows[1].event.replace(b"p-1", b"p-8")
    rows[1] = msgspec.structs.replace(
        rows[1], event=forged, hash=link_hash(rows[1].prev_hash, forged)
    )
    verdict = verify_chain(rows)
    assert verdict.first_bad_sequence == 3
    assert verdict.problem and "prev_hash" in verdict.problem


def test_a_removed_entry_breaks_the_chain_at_its_successor() -> None:
    rows = _rows([_event(n) for n in range(4)])
    del rows[1]
    assert verify_chain(rows).first_bad_sequence == 3
    # Removing the first entry leaves a chain that no longer starts at genesis.
    assert verify_chain(_rows([_event(n) for n in range(3)])[1:]).first_bad_sequence == 2


def test_entries_out_of_order_are_refused() -> None:
    rows = _rows([_event(n) for n in range(3)])
    swapped = [rows[0], msgspec.structs.replace(rows[1], sequence=1)]
    assert verify_chain(swapped).first_bad_sequence == 1
    check_appendable(5, [6, 9, 10])
    for bad in ([5], [7, 7], [8, 6]):
        with pytest.raises(ChainOrderError):
            check_appendable(5, bad)


def test_verification_resumes_after_any_entry() -> None:
    rows = _rows([_event(n) for n in range(6)])
    head = verify_chain(rows[:3])
    rest = verify_chain(rows[3:], prev_sequence=head.last_sequence, prev_hash=head.last_hash)
    assert rest.ok and rest.checked == 3 and rest.last_hash == rows[-1].hash


def test_an_extra_check_names_the_entry() -> None:
    rows = _rows([_event(n) for n in range(3)])
    verdict = verify_chain(rows, also=lambda row: "nope" if row.sequence == 2 else "")
    assert (verdict.first_bad_sequence, verdict.problem) == (2, "nope")


@given(st.lists(st.binary(max_size=64), max_size=20), st.integers(0, 19), st.binary(max_size=8))
def test_any_change_to_any_event_is_detected(
    events: list[bytes], index: int, suffix: bytes
) -> None:
    rows = _rows(events)
    assert verify_chain(rows).ok
    if not rows or not suffix:
        return
    index %= len(rows)
    rows[index] = msgspec.structs.replace(rows[index], event=rows[index].event + suffix)
    assert verify_chain(rows).first_bad_sequence == index + 1


# ---- entries ---------------------------------------------------------------------------------
def test_our_events_are_already_canonical() -> None:
    raw = _event(1)
    assert canonical_event(raw) == raw
    update = encode_envelope(
        make_envelope(
            ProjectUpdated(project_id="p1", name="N"),
            source="gateway",
            aggregate="project:p1",
            actor="system",
            occurred_at=AT,
        )
    )
    assert canonical_event(update) == update


def test_other_producers_key_order_and_spacing_do_not_matter() -> None:
    raw = _event(1)
    shuffled = msgspec.json.format(
        msgspec.json.encode(dict(reversed(list(msgspec.json.decode(raw).items())))), indent=2
    )
    assert shuffled != raw
    assert canonical_event(shuffled) == raw
    # Numbers no JSON round trip can keep are stored as received.
    odd = b'{"x": 1e400}'
    assert canonical_event(odd) == odd


def test_entry_columns_come_from_the_envelope() -> None:
    entry = new_entry(_event(7), sequence=42)
    assert entry.sequence == 42
    columns = entry.columns
    assert (columns.event_id, columns.type, columns.aggregate, columns.actor) == (
        "0190-0007",
        "project.created",
        "project:p7",
        "apikey:k1",
    )
    assert (columns.source, columns.correlation_id, columns.causation_id) == (
        "gateway",
        "req-7",
        None,
    )
    assert columns.occurred_at == AT
    with pytest.raises(msgspec.ValidationError):
        new_entry(b'{"id": "x"}', sequence=1)


def test_columns_are_storable_whatever_the_event_holds() -> None:
    raw = _event(1, actor="a\x00b", aggregate="x" * 5000)
    columns = entry_columns(canonical_event(raw))
    assert columns.actor == "a\ufffdb"
    assert len(columns.aggregate) == COLUMN_MAX_CHARS
    naive = msgspec.json.encode({**msgspec.json.decode(raw), "occurred_at": "2024-05-01T12:30:00"})
    assert entry_columns(naive).occurred_at == AT


def test_a_column_changed_without_its_event_is_named() -> None:
    event = canonical_event(_event(3))
    columns = entry_columns(event)
    assert columns_problem(columns, event) == ""
    forged = msgspec.structs.replace(columns, actor="apikey:someone-else")
    assert columns_problem(forged, event) == "column actor differs from the hashed event"
    assert "not a valid envelope" in columns_problem(columns, b"[]")


def test_an_event_id_is_recorded_once() -> None:
    entries = [new_entry(_event(n % 3), sequence=n + 1) for n in range(6)]
    fresh = first_occurrences(entries, stored_ids={"0190-0001"})
    assert [(e.sequence, e.columns.event_id) for e in fresh] == [(1, "0190-0000"), (3, "0190-0002")]


def test_a_window_must_not_be_empty() -> None:
    later = AT + dt.timedelta(seconds=1)
    assert window_problem(AT, later) == ""
    assert window_problem(None, AT) == window_problem(AT, None) == ""
    assert window_problem(later, AT) and window_problem(AT, AT)


# ---- CSV -------------------------------------------------------------------------------------
def test_csv_has_a_header_and_quotes_what_needs_quoting() -> None:
    event = canonical_event(_event(1))
    entry = AuditEntry(
        sequence=9,
        event_id="e1",
        type="project.created",
        aggregate="project:p1",
        actor="=HYPERLINK(1)",
        source="gateway",
        occurred_at=dt.datetime(2024, 5, 1, 14, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        correlation_id="-1+1",
        causation_id=None,
        prev_hash="0" * 64,
        hash="f" * 64,
        event=msgspec.Raw(event),
    )
    text = csv_text([entry], header=True)
    header, line, end = text.split("\r\n")
    assert header == ",".join(COLUMNS) and end == ""
    cells = next(csv.reader([line]))
    assert dict(zip(COLUMNS, cells, strict=True)) == {
        "sequence": "9",
        "event_id": "e1",
        "occurred_at": "2024-05-01T12:30:00Z",
        "type": "project.created",
        "aggregate": "project:p1",
        "actor": "'=HYPERLINK(1)",
        "source": "gateway",
        "correlation_id": "'-1+1",
        "causation_id": "",
        "prev_hash": "0" * 64,
        "hash": "f" * 64,
        "event": event.decode(),
    }
    assert csv_text([]) == ""
    assert spreadsheet_safe("@x") == "'@x" and spreadsheet_safe("ok-1") == "ok-1"
