"""Reading an OSV bundle (a zip of advisory JSON files) and planning its import. Pure.

``read_bundle`` opens the zip safely (``domain.archive``: traversal, symlinks, bombs are
refused for the whole upload) and reads the head of every ``*.json`` entry (id, modified,
ecosystems); a file that is not an OSV advisory is one record refused with its file and
JSON path, never a reason to drop the rest.

``plan_import`` compares the files with what the database holds (id → modified,
withdrawn). Incremental by ``modified``: a copy not newer than the held one is unchanged
(and neither decoded in full nor checked again: the held copy passed, and a daily re-import
of the whole OSV export is mostly that). Every other copy is decoded and checked
(``osv.decode_advisory``, ``osv.check_advisory``); a broken one is refused with its id and
the JSON path of the problem. When one id has several newer, valid copies the newest wins
(the first in path order on a tie) and the others count as unchanged. The projection
applies the same bundle with the same plan, so the counts published in the event are what
the read model becomes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import msgspec

from contracts.events.vulndb import ImportCounts, RejectedRecord
from services.scanner.domain.archive import ArchiveLimits, MiB, SafeZip
from services.scanner.domain.errors import ScannerError
from services.scanner.domain.osv import (
    Advisory,
    OsvError,
    check_advisory,
    check_storable,
    decode_advisory,
)
from services.scanner.domain.versions import base_ecosystem
from shared.storable import find_unstorable, storable_text

# An advisory bundle is many small files: the OSV export of every ecosystem has a few
# hundred thousand. The ratio limit still guards each large entry, the total bounds memory.
BUNDLE_LIMITS = ArchiveLimits(
    max_entries=1_000_000,
    max_total_size=1024 * MiB,
    max_entry_size=16 * MiB,
    max_ratio=200.0,
)
# One advisory must fit, with what the scanner adds, into a request/reply message (1 MiB).
MAX_ADVISORY_BYTES = 512 * 1024
UNKNOWN_ECOSYSTEM = "unknown"

Outcome = Literal["added", "updated", "withdrawn", "unchanged"]


class NoAdvisories(ScannerError):
    code, status, title = "osv_no_advisories", 422, "No OSV advisories in the upload"


@dataclass(frozen=True, slots=True)
class BundleFile:
    """One advisory file, read as far as planning needs."""

    path: str
    raw: bytes
    id: str
    modified: datetime
    ecosystems: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BundleEntry:
    """An advisory to import: decoded and checked."""

    path: str
    advisory: Advisory
    raw: bytes


class _HeadPackage(msgspec.Struct, frozen=True, gc=False):
    ecosystem: str = ""


class _HeadAffected(msgspec.Struct, frozen=True, gc=False):
    package: _HeadPackage | None = None


class _Head(msgspec.Struct, frozen=True, gc=False):
    id: str
    modified: datetime
    affected: tuple[_HeadAffected, ...] = ()


_HEAD = msgspec.json.Decoder(_Head)


@dataclass(frozen=True, slots=True)
class Rejected:
    record: RejectedRecord
    ecosystems: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Bundle:
    files: tuple[BundleFile, ...]  # in path order
    rejected: tuple[Rejected, ...]  # files that are not advisories; in path order
    skipped_files: int

    @property
    def ids(self) -> list[str]:
        return list(dict.fromkeys(file.id for file in self.files))


def _ecosystems(names: Iterable[str]) -> tuple[str, ...]:
    found = {base_ecosystem(name) for name in names if name.strip()}
    return tuple(sorted(found)) or (UNKNOWN_ECOSYSTEM,)


def ecosystems_of(advisory: Advisory) -> tuple[str, ...]:
    """The OSV base ecosystems an advisory names (sorted), or ``("unknown",)``."""
    return _ecosystems(a.package.ecosystem for a in advisory.affected if a.package is not None)


def _refused(
    path: str, exc: OsvError, *, advisory_id: str | None, ecosystems: tuple[str, ...]
) -> Rejected:
    record = RejectedRecord(
        id=advisory_id,
        file=storable_text(path, max_chars=1000),
        location=storable_text(exc.location or "$", max_chars=1000),
        code=exc.code,
        message=storable_text(exc.detail, max_chars=2000),
    )
    return Rejected(record, ecosystems)


def read_entry(path: str, raw: bytes) -> BundleFile | Rejected:
    """One file of a bundle: its head, or the record of why it is not an advisory."""
    if len(raw) > MAX_ADVISORY_BYTES:
        record = RejectedRecord(
            file=path,
            code="osv_too_large",
            message=f"{len(raw)} bytes; an advisory may have at most {MAX_ADVISORY_BYTES}",
        )
        return Rejected(record, (UNKNOWN_ECOSYSTEM,))
    try:
        head = _HEAD.decode(raw)
        if not head.id.strip():
            raise ValueError("empty id")
        if find_unstorable(head) is not None:  # e.g. a NUL in the id, a far-off modified
            raise ValueError("unstorable")
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError, RecursionError):
        try:  # the full decoder says precisely what is wrong, with the JSON path
            advisory = check_storable(decode_advisory(raw))
        except OsvError as exc:
            return _refused(path, exc, advisory_id=None, ecosystems=(UNKNOWN_ECOSYSTEM,))
        return BundleFile(path, raw, advisory.id, advisory.modified, ecosystems_of(advisory))
    names = (a.package.ecosystem for a in head.affected if a.package is not None)
    return BundleFile(path, raw, head.id, head.modified, _ecosystems(names))


def full_entry(file: BundleFile) -> BundleEntry | Rejected:
    """The file decoded in full and checked, or the record of what is broken."""
    try:
        advisory = check_advisory(decode_advisory(file.raw))
    except OsvError as exc:
        return _refused(file.path, exc, advisory_id=file.id, ecosystems=file.ecosystems)
    return BundleEntry(file.path, advisory, file.raw)


def read_bundle(data: bytes) -> Bundle:
    """Every file of a zip bundle (``ArchiveError`` refuses the upload as a whole;
    ``NoAdvisories`` when it holds no ``*.json`` file at all)."""
    archive = SafeZip.open(data, BUNDLE_LIMITS)
    try:
        paths = sorted(entry.path for entry in archive.entries)
        json_paths = [path for path in paths if path.lower().endswith(".json")]
        if not json_paths:
            raise NoAdvisories("the zip holds no *.json file")
        read = [read_entry(path, archive.read(path)) for path in json_paths]
    finally:
        archive.close()
    return Bundle(
        files=tuple(item for item in read if isinstance(item, BundleFile)),
        rejected=tuple(item for item in read if isinstance(item, Rejected)),
        skipped_files=len(paths) - len(json_paths),
    )


@dataclass(frozen=True, slots=True)
class Held:
    """What the database holds of one advisory."""

    modified: datetime
    withdrawn: bool


def outcome_of(advisory: Advisory, held: Held | None) -> Outcome:
    """Incremental by ``modified``: only a strictly newer copy changes anything."""
    if held is not None and advisory.modified <= held.modified:
        return "unchanged"
    if advisory.withdrawn is not None and (held is None or not held.withdrawn):
        return "withdrawn"
    return "added" if held is None else "updated"


@dataclass
class _Tally:
    added: int = 0
    updated: int = 0
    withdrawn: int = 0
    unchanged: int = 0
    rejected: int = 0

    def counts(self) -> ImportCounts:
        return ImportCounts(
            added=self.added,
            updated=self.updated,
            withdrawn=self.withdrawn,
            unchanged=self.unchanged,
            rejected=self.rejected,
        )


@dataclass(frozen=True)
class ImportPlan:
    changes: tuple[BundleEntry, ...]  # added, updated or withdrawn; sorted by id
    counts: ImportCounts
    counts_by_ecosystem: dict[str, ImportCounts]
    rejected: tuple[RejectedRecord, ...]  # unreadable files first, then broken advisories
    outcomes: dict[str, Outcome] = field(default_factory=dict)


def plan_import(bundle: Bundle, held: Mapping[str, Held]) -> ImportPlan:
    total = _Tally()
    by_ecosystem: dict[str, _Tally] = {}

    def count(kind: str, ecosystems: Iterable[str]) -> None:
        setattr(total, kind, getattr(total, kind) + 1)
        for ecosystem in ecosystems:
            tally = by_ecosystem.setdefault(ecosystem, _Tally())
            setattr(tally, kind, getattr(tally, kind) + 1)

    rejected = list(bundle.rejected)
    newest: dict[str, BundleEntry] = {}
    for file in bundle.files:
        known = held.get(file.id)
        if known is not None and file.modified <= known.modified:
            count("unchanged", file.ecosystems)
            continue
        entry = full_entry(file)
        if isinstance(entry, Rejected):
            rejected.append(entry)
            continue
        advisory = entry.advisory
        chosen = newest.get(advisory.id)
        if chosen is None:
            newest[advisory.id] = entry
        elif advisory.modified > chosen.advisory.modified:
            newest[advisory.id] = entry
            count("unchanged", ecosystems_of(chosen.advisory))  # an older copy in the bundle
        else:
            count("unchanged", ecosystems_of(advisory))
    changes: list[BundleEntry] = []
    outcomes: dict[str, Outcome] = {}
    for advisory_id in sorted(newest):
        entry = newest[advisory_id]
        outcome = outcome_of(entry.advisory, held.get(advisory_id))
        outcomes[advisory_id] = outcome
        count(outcome, ecosystems_of(entry.advisory))
        changes.append(entry)
    for item in rejected:
        count("rejected", item.ecosystems)
    return ImportPlan(
        changes=tuple(changes),
        counts=total.counts(),
        counts_by_ecosystem={k: by_ecosystem[k].counts() for k in sorted(by_ecosystem)},
        rejected=tuple(r.record for r in rejected),
        outcomes=outcomes,
    )
