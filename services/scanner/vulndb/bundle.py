"""Reading an OSV bundle (a zip of advisory JSON files) and planning its import. Pure.

``read_bundle`` opens the zip safely (``domain.archive``: traversal, symlinks, bombs are
refused for the whole upload), decodes and checks every ``*.json`` entry and sorts the
advisories from the refused ones: a broken advisory is one record refused with its id, file
and JSON path, never a reason to drop the rest. When one id appears in several files the
newest ``modified`` wins (the first in path order on a tie); the others count as unchanged.

``plan_import`` compares the bundle with what the database holds (id → modified, withdrawn)
and says, per advisory and per ecosystem, what the import adds, updates, withdraws or leaves
alone. The projection applies the same bundle with the same rule (newer ``modified`` wins),
so the plan published in the event is what the read model becomes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from contracts.events.vulndb import ImportCounts, RejectedRecord
from services.scanner.domain.archive import ArchiveLimits, MiB, SafeZip
from services.scanner.domain.errors import ScannerError
from services.scanner.domain.osv import Advisory, OsvError, check_advisory, decode_advisory
from services.scanner.domain.versions import base_ecosystem

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
class BundleEntry:
    path: str
    advisory: Advisory
    raw: bytes


@dataclass(frozen=True, slots=True)
class Rejected:
    record: RejectedRecord
    ecosystems: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Bundle:
    entries: tuple[BundleEntry, ...]  # one per id, sorted by id
    rejected: tuple[Rejected, ...]  # in path order
    duplicates: tuple[BundleEntry, ...]  # older copies of an id (counted unchanged)
    skipped_files: int


def ecosystems_of(advisory: Advisory) -> tuple[str, ...]:
    """The OSV base ecosystems an advisory names (sorted), or ``("unknown",)``."""
    found = {
        base_ecosystem(affected.package.ecosystem)
        for affected in advisory.affected
        if affected.package is not None and affected.package.ecosystem.strip()
    }
    return tuple(sorted(found)) or (UNKNOWN_ECOSYSTEM,)


def read_entry(path: str, raw: bytes) -> BundleEntry | Rejected:
    """One file of a bundle: an advisory, or the record of why it is refused."""
    if len(raw) > MAX_ADVISORY_BYTES:
        record = RejectedRecord(
            file=path,
            code="osv_too_large",
            message=f"{len(raw)} bytes; an advisory may have at most {MAX_ADVISORY_BYTES}",
        )
        return Rejected(record, (UNKNOWN_ECOSYSTEM,))
    try:
        advisory = decode_advisory(raw)
    except OsvError as exc:
        record = RejectedRecord(
            id=None, file=path, location=exc.location or "$", code=exc.code, message=exc.detail
        )
        return Rejected(record, (UNKNOWN_ECOSYSTEM,))
    try:
        check_advisory(advisory)
    except OsvError as exc:
        record = RejectedRecord(
            id=advisory.id,
            file=path,
            location=exc.location or "$",
            code=exc.code,
            message=exc.detail,
        )
        return Rejected(record, ecosystems_of(advisory))
    return BundleEntry(path, advisory, raw)


def read_bundle(data: bytes) -> Bundle:
    """Every advisory of a zip bundle (``ArchiveError`` refuses the upload as a whole;
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
    newest: dict[str, BundleEntry] = {}
    duplicates: list[BundleEntry] = []
    rejected: list[Rejected] = []
    for item in read:
        if isinstance(item, Rejected):
            rejected.append(item)
            continue
        held = newest.get(item.advisory.id)
        if held is None:
            newest[item.advisory.id] = item
        elif item.advisory.modified > held.advisory.modified:
            duplicates.append(held)
            newest[item.advisory.id] = item
        else:
            duplicates.append(item)
    return Bundle(
        entries=tuple(newest[key] for key in sorted(newest)),
        rejected=tuple(rejected),
        duplicates=tuple(duplicates),
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
    rejected: tuple[RejectedRecord, ...]
    outcomes: dict[str, Outcome] = field(default_factory=dict)


def plan_import(bundle: Bundle, held: Mapping[str, Held]) -> ImportPlan:
    total = _Tally()
    by_ecosystem: dict[str, _Tally] = {}

    def count(kind: str, ecosystems: Iterable[str]) -> None:
        setattr(total, kind, getattr(total, kind) + 1)
        for ecosystem in ecosystems:
            tally = by_ecosystem.setdefault(ecosystem, _Tally())
            setattr(tally, kind, getattr(tally, kind) + 1)

    changes: list[BundleEntry] = []
    outcomes: dict[str, Outcome] = {}
    for entry in bundle.entries:
        outcome = outcome_of(entry.advisory, held.get(entry.advisory.id))
        outcomes[entry.advisory.id] = outcome
        count(outcome, ecosystems_of(entry.advisory))
        if outcome != "unchanged":
            changes.append(entry)
    for entry in bundle.duplicates:
        count("unchanged", ecosystems_of(entry.advisory))
    for rejected in bundle.rejected:
        count("rejected", rejected.ecosystems)
    return ImportPlan(
        changes=tuple(changes),
        counts=total.counts(),
        counts_by_ecosystem={k: by_ecosystem[k].counts() for k in sorted(by_ecosystem)},
        rejected=tuple(r.record for r in bundle.rejected),
        outcomes=outcomes,
    )
