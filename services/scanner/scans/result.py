"""The result of a scan as one immutable blob: every component and every finding, and the
previous snapshot's findings it resolves; the result of a re-match likewise.

``scan.completed`` / ``scan.rematched`` name them by digest; the projection reads them to
fill ``components`` and ``findings``, so a replay rebuilds the same rows from the same
bytes (the ``finding.created`` / ``finding.resolved`` events announce the same facts to
subscribers). The encoding is canonical (msgspec JSON, fields in declaration order).
"""

from __future__ import annotations

import datetime as dt

import msgspec

from services.scanner.domain.model import Dependency, Hash, IngestWarning, License

RESULT_FORMAT = 1


class ComponentRecord(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    ref: str
    name: str
    version: str | None = None
    purl: str | None = None
    ecosystem: str | None = None
    # "<ecosystem>:<normalised name>" as the matcher keys it; None when it cannot be told.
    package: str | None = None
    type: str = "library"
    group: str | None = None
    scope: str = "unknown"
    direct: bool | None = None
    hashes: tuple[Hash, ...] = ()
    licenses: tuple[License, ...] = ()
    license_expression: str | None = None
    license_category: str = "unknown"


class FindingRecord(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    id: str
    component_ref: str
    component_name: str
    component_version: str | None
    purl: str | None
    ecosystem: str
    package: str
    vulnerability_id: str
    advisory_ids: tuple[str, ...]
    aliases: tuple[str, ...]
    match: str  # affected | not_evaluated
    match_reason: str | None = None
    severity: str
    cvss_score: float | None = None
    epss: float | None = None
    epss_percentile: float | None = None
    state: str = "new"
    justification: str | None = None
    detail: str = ""
    discovered_at: dt.datetime


class LockfileNote(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A lockfile of a source scan: read (with its ecosystem) or failed (with why)."""

    path: str
    ecosystem: str | None = None
    code: str | None = None
    detail: str | None = None
    location: str | None = None


class Resolution(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """An open finding (of this snapshot, or of the one before) that went away."""

    finding_id: str
    reason: str  # not_in_new_snapshot | advisory_withdrawn | no_longer_in_range
    # What its finding.resolved says (the finding's snapshot, weakness and package).
    scan_id: str = ""
    vulnerability_id: str = ""
    package: str = ""


class ScanResult(msgspec.Struct, frozen=True, kw_only=True):
    format_version: int = RESULT_FORMAT
    scan_id: str
    project_id: str
    format: str
    spec_version: str
    components: tuple[ComponentRecord, ...]
    dependencies: tuple[Dependency, ...] = ()
    findings: tuple[FindingRecord, ...] = ()
    warnings: tuple[IngestWarning, ...] = ()
    lockfiles: tuple[LockfileNote, ...] = ()
    # Open findings of the project's previous snapshot that this one no longer has.
    resolved: tuple[Resolution, ...] = ()
    # Ids of the findings new relative to the previous snapshot (announced as created).
    created: tuple[str, ...] = ()
    # The EPSS threshold the scan was judged by (announcements use the same one).
    epss_threshold: float | None = None


class RematchResult(msgspec.Struct, frozen=True, kw_only=True):
    """What a re-match changed in a snapshot: findings that appeared, findings that went,
    and open findings whose severity changed (an alias carrying CVSS was imported)."""

    format_version: int = RESULT_FORMAT
    scan_id: str
    job_id: str
    created: tuple[FindingRecord, ...] = ()
    resolved: tuple[Resolution, ...] = ()
    rerated: tuple[FindingRecord, ...] = ()


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(ScanResult)
_rematch_decoder = msgspec.json.Decoder(RematchResult)


def encode_result(result: ScanResult) -> bytes:
    return _encoder.encode(result)


def decode_result(data: bytes) -> ScanResult:
    return _decoder.decode(data)


def encode_rematch(result: RematchResult) -> bytes:
    return _encoder.encode(result)


def decode_rematch(data: bytes) -> RematchResult:
    return _rematch_decoder.decode(data)
