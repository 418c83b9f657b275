"""Events owned by the scanner's vulnerability database: OSV and EPSS imports."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from contracts.envelope import EventPayload, register

VulnDbSource = Literal["osv", "epss"]
ImportFormat = Literal["zip", "folder", "csv", "csv.gz"]

# Caps that keep the event well under the NATS payload limit (1 MiB).
REJECTED_EXAMPLES_MAX = 100
CHANGED_ADVISORIES_MAX = 1_000
CHANGED_PACKAGES_MAX = 2_000


class ImportCounts(msgspec.Struct, frozen=True, kw_only=True):
    """What an import did with the records it carried."""

    added: Annotated[int, msgspec.Meta(ge=0, description="New records")] = 0
    updated: Annotated[
        int, msgspec.Meta(ge=0, description="Records that replaced an older copy")
    ] = 0
    withdrawn: Annotated[
        int,
        msgspec.Meta(ge=0, description="OSV: advisories withdrawn by this import (stop matching)"),
    ] = 0
    unchanged: Annotated[
        int,
        msgspec.Meta(ge=0, description="Records already held in this or a newer version (ignored)"),
    ] = 0
    rejected: Annotated[int, msgspec.Meta(ge=0, description="Records refused (see `rejected`)")] = 0


class RejectedRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One refused record: which, where in the upload, and why."""

    id: Annotated[str | None, msgspec.Meta(description="The advisory id, when readable")] = None
    file: Annotated[str, msgspec.Meta(description="The file inside the upload")] = ""
    location: Annotated[
        str, msgspec.Meta(description="JSON path inside the advisory (or line number)")
    ] = "$"
    code: str
    message: str


class PackageRef(msgspec.Struct, frozen=True, kw_only=True):
    """A package as the matcher keys it: OSV base ecosystem and normalised name."""

    ecosystem: str
    package: str


@register
class VulnDbUpdated(EventPayload, frozen=True, kw_only=True):
    """The vulnerability database changed: an OSV advisory bundle or an EPSS score file was
    imported.

    The uploaded bytes are the blob ``digest``; the scanner's projection reads it to apply
    the import, so a replay rebuilds the same database. For OSV, ``changed_advisory_ids``
    and ``changed_packages`` say what a re-match of the projects' latest snapshots has to
    look at (every package an added, updated or withdrawn advisory names, before and after,
    and the packages of advisories sharing an alias group with one); when there are more
    than the caps, ``rematch_all`` is true and the lists are empty. An EPSS import changes
    no match (``rematch_all`` false, lists empty); its date is ``epss_as_of``.
    """

    event_type = "vulndb.updated"
    import_id: str
    source: VulnDbSource
    digest: Annotated[str, msgspec.Meta(pattern=r"^sha256:[0-9a-f]{64}$")]
    format: ImportFormat
    name: Annotated[str, msgspec.Meta(description="File or folder name as given")] = ""
    counts: ImportCounts
    counts_by_ecosystem: Annotated[
        dict[str, ImportCounts],
        msgspec.Meta(
            description="OSV: counts per OSV base ecosystem (an advisory naming two counts in "
            "both; one naming none, or unreadable, under `unknown`)"
        ),
    ] = {}
    rejected: Annotated[
        list[RejectedRecord],
        msgspec.Meta(description=f"The first {REJECTED_EXAMPLES_MAX} refused records"),
    ] = []
    skipped_files: Annotated[
        int, msgspec.Meta(ge=0, description="OSV: files in the upload that are not *.json")
    ] = 0
    changed_advisory_ids: list[str] = []
    changed_packages: list[PackageRef] = []
    rematch_all: bool = False
    epss_as_of: dt.date | None = None
    epss_model_version: str | None = None
