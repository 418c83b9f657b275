"""The scanner's result blob, read tolerantly: only the fields a decision needs.

The scanner's own Struct (services/scanner/scans/result.py) is its internal format; this
one ignores every other field, so additions there cost nothing here. A unit test decodes a
blob the scanner's encoder wrote, so a rename there is caught.
"""

from __future__ import annotations

import msgspec


class ResultFinding(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    package: str
    vulnerability_id: str
    severity: str = "UNKNOWN"
    epss: float | None = None
    state: str = "new"
    match: str = "affected"


class ResultFindings(msgspec.Struct, frozen=True, kw_only=True):
    scan_id: str = ""
    findings: tuple[ResultFinding, ...] = ()


class RematchFindings(msgspec.Struct, frozen=True, kw_only=True):
    """A re-match's blob: open findings whose severity changed (created and resolved ones
    arrive as ``finding.*`` events)."""

    scan_id: str = ""
    rerated: tuple[ResultFinding, ...] = ()


_decoder = msgspec.json.Decoder(ResultFindings)
_rematch_decoder = msgspec.json.Decoder(RematchFindings)


def decode_findings(data: bytes) -> ResultFindings:
    return _decoder.decode(data)


def decode_rematch(data: bytes) -> RematchFindings:
    return _rematch_decoder.decode(data)
