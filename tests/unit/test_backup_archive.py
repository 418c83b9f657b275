"""The backup format's pure rules: gaps, the restore plan, classification, checks."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.backup.archive import (
    ArchiveError,
    Manifest,
    Member,
    StoredMessage,
    StreamPart,
    check_members,
    check_migrations,
    decode_manifest,
    encode_manifest,
    gaps_of,
    sequence_plan,
    unreplayable_tables,
)
from services.gateway.domain.backups import BackupOutcome, backup_status

NOW = dt.datetime(2026, 12, 6, 12, tzinfo=dt.UTC)


def message(seq: int) -> StoredMessage:
    return StoredMessage(seq=seq, subject="project.created", data=b"{}")


def test_gaps_are_inclusive_ranges_including_the_tail() -> None:
    assert gaps_of([3, 4, 7], last=9) == [(1, 2), (5, 6), (8, 9)]
    assert gaps_of([1, 2, 3], last=3) == []
    assert gaps_of([], last=2) == [(1, 2)]
    assert gaps_of([], last=0) == []


@given(st.sets(st.integers(min_value=1, max_value=60)), st.integers(min_value=0, max_value=10))
def test_the_plan_visits_every_sequence_once_in_order(present: set[int], extra: int) -> None:
    last = max(present, default=0) + extra
    plan = list(sequence_plan((message(s) for s in sorted(present)), last=last))
    numbers = [item.seq if isinstance(item, StoredMessage) else item for item in plan]
    assert numbers == list(range(1, last + 1))
    assert {item.seq for item in plan if isinstance(item, StoredMessage)} == present
    gaps = [item for item in plan if isinstance(item, int)]
    assert sum(b - a + 1 for a, b in gaps_of(sorted(present), last=last)) == len(gaps)


def test_messages_out_of_order_stop_the_plan() -> None:
    with pytest.raises(ArchiveError, match="out of order"):
        list(sequence_plan([message(2), message(1)], last=2))


def test_state_tables_are_what_no_projection_and_no_bookkeeping_holds() -> None:
    tables = ["projects", "signing_keys", "schema_migrations", "dead_letter", "idempotency_keys"]
    assert unreplayable_tables(tables, ["projects"]) == ["idempotency_keys", "signing_keys"]


def manifest(**changes: object) -> Manifest:
    fields: dict[str, object] = {
        "backup_id": "b1",
        "gatehouse_version": "0.1.0",
        "created_at": NOW,
        "stream": StreamPart(name="GATEHOUSE", last_sequence=3, messages=3),
        "blob_bucket": "GATEHOUSE_BLOBS",
        "blobs": [],
        "tables": [],
        "migrations": {"gateway": 3},
        "members": [Member(name="stream/messages.jsonl", sha256="a" * 64, size=10)],
    }
    fields.update(changes)
    return Manifest(**fields)  # type: ignore[arg-type]


def test_a_manifest_round_trips_and_a_newer_format_is_refused() -> None:
    assert decode_manifest(encode_manifest(manifest())) == manifest()
    with pytest.raises(ArchiveError, match="format version 2"):
        decode_manifest(encode_manifest(manifest(format_version=2)))
    with pytest.raises(ArchiveError, match="not a Gatehouse backup manifest"):
        decode_manifest(b'{"format": "tar"}')


def test_members_must_all_be_there_with_their_digest() -> None:
    check_members(manifest(), {"stream/messages.jsonl": "a" * 64})
    with pytest.raises(ArchiveError, match=r"lacks stream/messages\.jsonl"):
        check_members(manifest(), {})
    with pytest.raises(ArchiveError, match=r"does not match its SHA-256"):
        check_members(manifest(), {"stream/messages.jsonl": "b" * 64})


def test_an_archive_from_a_newer_schema_needs_a_newer_gatehouse() -> None:
    check_migrations({"gateway": 3}, {"gateway": 3, "audit": 1})
    check_migrations({"gateway": 2}, {"gateway": 3})
    with pytest.raises(ArchiveError, match=r"gateway \(archive 4, this Gatehouse 3\)"):
        check_migrations({"gateway": 4}, {"gateway": 3})


def outcome(*, hours_ago: float, succeeded: bool = True) -> BackupOutcome:
    return BackupOutcome(
        backup_id="b", succeeded=succeeded, finished_at=NOW - dt.timedelta(hours=hours_ago)
    )


@pytest.mark.parametrize(
    ("success", "attempt", "status"),
    [
        (None, None, "never"),
        (None, outcome(hours_ago=1, succeeded=False), "never"),
        (outcome(hours_ago=1), outcome(hours_ago=1), "ok"),
        (outcome(hours_ago=30), outcome(hours_ago=30), "stale"),
        (outcome(hours_ago=2), outcome(hours_ago=1, succeeded=False), "failed"),
    ],
)
def test_backup_status(
    success: BackupOutcome | None, attempt: BackupOutcome | None, status: str
) -> None:
    assert (
        backup_status(
            last_success=success, last_attempt=attempt, now=NOW, max_age=dt.timedelta(hours=26)
        )
        == status
    )
