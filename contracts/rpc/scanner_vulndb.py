"""``svc.scanner.vulndb_*``: import OSV advisories and EPSS scores, read the database's status
and one advisory.

Imports name a blob (the uploaded bytes, stored first by the gateway or the CLI) by digest;
the bytes never travel in the request. ``ImportSummary``, ``VulnDbStatus`` and
``AdvisoryDetail`` are also the bodies of the gateway's ``/api/v1/vulndb/*`` answers.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec

from contracts.events.vulndb import (
    ImportCounts,
    ImportFormat,
    PackageRef,
    RejectedRecord,
    VulnDbSource,
)

SERVICE = "scanner"
IMPORT_OSV = "vulndb_import"
IMPORT_EPSS = "vulndb_epss"
STATUS = "vulndb_status"
ADVISORY = "vulndb_advisory"

# An import reads, validates and applies a whole bundle before it answers (the real OSV
# PyPI + Go data takes seconds, 100k advisories about a minute on a small machine), so its
# callers wait this long instead of the ordinary RPC deadline.
IMPORT_TIMEOUT_SECONDS = 600.0

Digest = Annotated[str, msgspec.Meta(pattern=r"^sha256:[0-9a-f]{64}$")]
FileName = Annotated[str, msgspec.Meta(max_length=255)]
AdvisoryId = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]


class OsvImportRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    digest: Digest
    format: Literal["zip", "folder"] = "zip"
    name: FileName = ""


class EpssImportRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    digest: Digest
    name: FileName = ""


class ImportSummary(msgspec.Struct, frozen=True, kw_only=True):
    """What an import did; ``sequence`` is the stream sequence of its ``vulndb.updated``."""

    import_id: str
    sequence: int
    source: VulnDbSource
    digest: str
    format: ImportFormat
    name: str
    counts: ImportCounts
    counts_by_ecosystem: dict[str, ImportCounts]
    rejected: Annotated[
        list[RejectedRecord], msgspec.Meta(description="The first 100 refused records")
    ]
    skipped_files: int
    changed_advisories: Annotated[
        int, msgspec.Meta(description="Advisories added, updated or withdrawn")
    ]
    rematch_all: bool
    epss_as_of: dt.date | None = None
    epss_model_version: str | None = None


class StatusRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class ImportRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One import as the database recorded it."""

    import_id: str
    sequence: int
    source: VulnDbSource
    at: dt.datetime
    actor: str
    digest: str
    format: ImportFormat
    name: str
    counts: ImportCounts
    epss_as_of: dt.date | None = None


class EpssStatus(msgspec.Struct, frozen=True, kw_only=True):
    count: int
    as_of: Annotated[
        dt.date | None, msgspec.Meta(description="Score date of the newest imported file")
    ]
    model_version: str | None


class VulnDbStatus(msgspec.Struct, frozen=True, kw_only=True):
    advisories: Annotated[int, msgspec.Meta(description="Active (not withdrawn) advisories")]
    withdrawn: int
    by_ecosystem: Annotated[
        dict[str, int],
        msgspec.Meta(description="Active advisories per OSV ecosystem (one naming two: both)"),
    ]
    last_import: ImportRecord | None
    last_epss_import: ImportRecord | None
    epss: EpssStatus
    version: Annotated[
        int, msgspec.Meta(description="Stream sequence the database has applied up to")
    ]


class AdvisoryRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: AdvisoryId


class EpssScore(msgspec.Struct, frozen=True, kw_only=True):
    cve: str
    score: float
    percentile: float
    as_of: dt.date


class AdvisoryDetail(msgspec.Struct, frozen=True, kw_only=True):
    """An advisory with what the scanner derives from it."""

    id: str
    requested: Annotated[str, msgspec.Meta(description="The id asked for (an id or an alias)")]
    modified: dt.datetime
    withdrawn: dt.datetime | None
    severity: Literal["CRITICAL", "HIGH", "MEDIUM", "LOW", "NONE", "UNKNOWN"]
    cvss_score: float | None
    severity_source: Annotated[
        str | None, msgspec.Meta(description="CVSS_V3, CVSS_V4, CVSS_V2 or database_specific")
    ]
    severity_vector: str | None
    group_id: Annotated[
        str, msgspec.Meta(description="The alias group's id (its lowest CVE, else lowest id)")
    ]
    aliases: Annotated[
        list[str], msgspec.Meta(description="Every id of the alias group, this one included")
    ]
    group_advisories: Annotated[
        list[str], msgspec.Meta(description="Advisories held for the group (ids)")
    ]
    packages: list[PackageRef]
    epss: Annotated[list[EpssScore], msgspec.Meta(description="EPSS of the group's CVE ids")]
    advisory: Annotated[Any, msgspec.Meta(description="The OSV document as imported")]
