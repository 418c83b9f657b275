"""The result of a scan as one immutable blob: every component and every finding.

``scan.completed`` names it by digest; the projection reads it to fill ``components`` and
``findings``, so a replay rebuilds the same rows from the same bytes. The encoding is
canonical (msgspec JSON, fields in declaration order, no timestamps beyond the ones inside),
so the same scan gives the same digest.
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


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(ScanResult)


def encode_result(result: ScanResult) -> bytes:
    return _encoder.encode(result)


def decode_result(data: bytes) -> ScanResult:
    return _decoder.decode(data)
