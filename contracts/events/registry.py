"""Events of the artifact registry (issue 12).

* ``repository.*`` — registry repositories (a project's package repositories: ``pypi`` or
  ``generic``), owned by the scanner, which owns artifact metadata.
* ``artifact.*`` — artifacts uploaded, scanned, released from or rejected in quarantine,
  promoted, deleted (scanner).
* ``block.*`` — security blocks (scanner); ``block.hit`` is published by the gateway, which
  refused the download; ``block.applied`` says what a change of the blocks (or a
  vulnerability-database import's malicious-package advisories) did to the stored
  artifacts.
* ``artifact.blocked`` / ``artifact.unblocked`` — a block started / stopped applying to a
  stored artifact (the release gate's ``artifact_blocked`` evidence: block matching is the
  scanner's rule, so it says which artifacts a block names).
* ``download.recorded`` — who pulled what (gateway; not a public domain: it names
  principals and client addresses).
* ``quota.exceeded`` and ``retention.*`` (scanner).

The bytes of an artifact never travel on the bus: events carry its ``sha256:`` digest; the
bytes live in the artifact blob store (``shared.artifact_blobs``).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from contracts.envelope import EventPayload, register
from contracts.events.releases import BLOCKERS_MAX, Blocker, Decision
from contracts.events.scans import CommitSha, Digest, Repo, SeverityLevel

RegistryFormat = Literal["pypi", "generic"]
REGISTRY_FORMATS: tuple[RegistryFormat, ...] = ("pypi", "generic")
RepoVisibility = Literal["public", "private"]
# A registry repository's slug, unique within its project (it is a URL path segment).
RepoSlug = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")]
RepositoryId = Annotated[str, msgspec.Meta(pattern=r"^repo_[0-9a-f]{32}$")]
ArtifactId = Annotated[str, msgspec.Meta(pattern=r"^art_[0-9a-f]{32}$")]
BlockId = Annotated[
    str, msgspec.Meta(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
]
RetentionPolicyId = Annotated[str, msgspec.Meta(pattern=r"^ret_[0-9a-f]{32}$")]
# The artifact's path inside its repository: a pypi file name (`demo-1.0-py3-none-any.whl`)
# or a generic path (`tools/linux/amd64/tool.tar.gz`). '/'-separated, no '.'/'..' segment,
# no NUL, no leading '/': checked by ``shared.artifact_paths`` before it gets here.
ArtifactPath = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
PackageName = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
PackageVersion = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Purl = Annotated[str, msgspec.Meta(min_length=5, max_length=2048, pattern=r"^pkg:")]
Description = Annotated[str, msgspec.Meta(max_length=1000)]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
CustomerMessage = Annotated[str, msgspec.Meta(max_length=4000)]
Principal = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
ByteCount = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
ArtifactKind = Literal["wheel", "sdist", "file"]
# `vers:` range (https://github.com/package-url/purl-spec/blob/master/VERSION-RANGE-SPEC.rst)
VersRange = Annotated[str, msgspec.Meta(min_length=6, max_length=2000, pattern=r"^vers:")]
# A glob on the package name (`evil-*`), matched against the normalized name.
NamePattern = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
BlockSource = Literal["manual", "malicious_advisory"]
DeleteReason = Literal["deleted", "retention", "quarantine_rejected"]
ScanVerdict = Literal["passed", "blocked", "failed"]
AdvisoryId = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
# Caps that keep the events well under the NATS payload limit (1 MiB).
ADVISORIES_MAX = 500


class Provenance(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Where an artifact was built from, when the upload says so."""

    repo: Repo | None = None
    commit: CommitSha | None = None


# ---- repositories ----------------------------------------------------------------------------
@register
class RepositoryCreated(EventPayload, frozen=True, kw_only=True):
    """A registry repository was created in a project."""

    event_type = "repository.created"
    id: RepositoryId
    project_id: str
    slug: RepoSlug
    format: RegistryFormat
    visibility: RepoVisibility = "private"
    quarantine_new: bool = False
    description: Description = ""
    # Quotas (None: unlimited).
    quota_bytes: ByteCount | None = None
    quota_artifacts: ByteCount | None = None


@register
class RepositoryUpdated(EventPayload, frozen=True, kw_only=True):
    """Fields of a registry repository changed; only the changed fields are present."""

    event_type = "repository.updated"
    id: RepositoryId
    visibility: RepoVisibility | msgspec.UnsetType = msgspec.UNSET
    quarantine_new: bool | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType = msgspec.UNSET
    quota_bytes: ByteCount | msgspec.UnsetType | None = msgspec.UNSET
    quota_artifacts: ByteCount | msgspec.UnsetType | None = msgspec.UNSET


@register
class RepositoryDeleted(EventPayload, frozen=True, kw_only=True):
    """A registry repository was deleted, with every artifact in it."""

    event_type = "repository.deleted"
    id: RepositoryId


# ---- artifacts -------------------------------------------------------------------------------
@register
class ArtifactUploaded(EventPayload, frozen=True, kw_only=True):
    """An artifact was stored (its bytes are in the blob store under ``digest``). In a
    ``quarantine_new`` repository it is held (``quarantined``) until its scan passes."""

    event_type = "artifact.uploaded"
    id: ArtifactId
    repo_id: RepositoryId
    project_id: str
    format: RegistryFormat
    path: ArtifactPath
    kind: ArtifactKind
    digest: Digest
    size: ByteCount
    name: PackageName | None = None
    version: PackageVersion | None = None
    purl: Purl | None = None
    # pypi: the wheel's METADATA as its own blob (PEP 658 / 714), and Requires-Python.
    metadata_digest: Digest | None = None
    requires_python: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    # SBOMs the artifact carries (PEP 770 `.dist-info/sboms/`), stored as blobs.
    sbom_digests: list[Digest] = []
    provenance: Provenance | None = None
    quarantined: bool = False
    uploaded_by: Principal


@register
class ArtifactScanned(EventPayload, frozen=True, kw_only=True):
    """The scan on upload finished: ``blocked`` when a malicious-package advisory names the
    artifact (a block was created), ``failed`` when it could not be scanned."""

    event_type = "artifact.scanned"
    id: ArtifactId
    repo_id: RepositoryId
    digest: Digest
    verdict: ScanVerdict
    # The advisories that name the artifact's own purl (vulnerabilities and MAL- entries).
    advisories: Annotated[list[AdvisoryId], msgspec.Meta(max_length=ADVISORIES_MAX)] = []
    malicious: Annotated[list[AdvisoryId], msgspec.Meta(max_length=ADVISORIES_MAX)] = []
    # The scan of the SBOM the artifact carried, if any.
    scan_id: str | None = None
    detail: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    # The severity of each of ``advisories`` as the vulnerability database rated it (the
    # release gate decides an artifact without provenance on them).
    severities: dict[AdvisoryId, SeverityLevel] = {}
    # The blocks that applied when the scan ended (``verdict`` blocked).
    block_ids: list[BlockId] = []


@register
class ArtifactQuarantineReleased(EventPayload, frozen=True, kw_only=True):
    """A quarantined artifact may be downloaded now (its scan passed, or an admin released
    it; ``reason`` says which)."""

    event_type = "artifact.quarantine-released"
    id: ArtifactId
    repo_id: RepositoryId
    digest: Digest
    reason: Reason


@register
class ArtifactPromoted(EventPayload, frozen=True, kw_only=True):
    """An artifact was copied by digest into another repository (``id`` is the copy)."""

    event_type = "artifact.promoted"
    id: ArtifactId
    source_artifact_id: ArtifactId
    from_repo_id: RepositoryId
    to_repo_id: RepositoryId
    # The project of ``to_repo_id`` (the copy's).
    to_project_id: str | None = None
    digest: Digest
    # Set when an APPROVER promoted over a NO_SHIP decision.
    override_reason: Reason | None = None
    # The promoter's reason, and the artifact's decision at promotion (as the release gate
    # answered it: its blockers are the ones overridden, if any).
    reason: Reason | None = None
    decision: Decision | None = None
    blockers: Annotated[list[Blocker], msgspec.Meta(max_length=BLOCKERS_MAX)] = []
    path: ArtifactPath | None = None


@register
class ArtifactDeleted(EventPayload, frozen=True, kw_only=True):
    """An artifact was removed from its repository (its blob is kept while another
    artifact names the same digest)."""

    event_type = "artifact.deleted"
    id: ArtifactId
    repo_id: RepositoryId
    digest: Digest
    reason: DeleteReason = "deleted"
    detail: Annotated[str, msgspec.Meta(max_length=2000)] = ""


@register
class ArtifactBlocked(EventPayload, frozen=True, kw_only=True):
    """A block applies to a stored artifact now (it was created, widened, or the artifact
    was uploaded while it stood); published again with another ``block_id`` when the block
    that applies changes. Downloads answer 451; the release gate blocks the commit named by
    ``provenance`` (``artifact_blocked``)."""

    event_type = "artifact.blocked"
    id: ArtifactId
    repo_id: RepositoryId
    project_id: str
    digest: Digest
    path: ArtifactPath
    purl: Purl | None = None
    provenance: Provenance | None = None
    block_id: BlockId
    reason: Reason
    source: BlockSource = "manual"
    advisory_id: AdvisoryId | None = None


@register
class ArtifactUnblocked(EventPayload, frozen=True, kw_only=True):
    """No block applies to a stored artifact any more (its block was lifted, narrowed or
    expired); ``block_id`` is the one that applied until now."""

    event_type = "artifact.unblocked"
    id: ArtifactId
    repo_id: RepositoryId
    project_id: str
    digest: Digest
    provenance: Provenance | None = None
    block_id: BlockId


# ---- blocks ----------------------------------------------------------------------------------
@register
class BlockCreated(EventPayload, frozen=True, kw_only=True):
    """A security block: downloads of what it matches answer 451. Exactly one of ``purl``,
    ``digest`` and ``name_pattern`` is set."""

    event_type = "block.created"
    id: BlockId
    purl: Purl | None = None
    versions: VersRange | None = None
    digest: Digest | None = None
    name_pattern: NamePattern | None = None
    # A block may be limited to a format (pypi names differ from generic paths).
    format: RegistryFormat | None = None
    reason: Reason
    customer_message: CustomerMessage = ""
    blocked_until: dt.datetime | None = None
    source: BlockSource = "manual"
    advisory_id: Annotated[str, msgspec.Meta(max_length=200)] | None = None


@register
class BlockUpdated(EventPayload, frozen=True, kw_only=True):
    """Fields of a block changed; only the changed fields are present."""

    event_type = "block.updated"
    id: BlockId
    versions: VersRange | msgspec.UnsetType | None = msgspec.UNSET
    reason: Reason | msgspec.UnsetType = msgspec.UNSET
    customer_message: CustomerMessage | msgspec.UnsetType = msgspec.UNSET
    blocked_until: dt.datetime | msgspec.UnsetType | None = msgspec.UNSET


@register
class BlockDeleted(EventPayload, frozen=True, kw_only=True):
    """A block was lifted."""

    event_type = "block.deleted"
    id: BlockId


@register
class BlockHit(EventPayload, frozen=True, kw_only=True):
    """A download was refused (451) because of a block."""

    event_type = "block.hit"
    block_id: BlockId
    artifact_id: ArtifactId
    repo_id: RepositoryId
    digest: Digest
    purl: Purl | None = None
    principal: Principal


@register
class BlockApplied(EventPayload, frozen=True, kw_only=True):
    """The registry applied a change to its stored artifacts: a block's creation, change or
    deletion (``block_id``), or an OSV import's malicious-package advisories
    (``import_id``: the blocks it created are ``created_blocks``). ``blocked`` and
    ``unblocked`` count the ``artifact.blocked`` / ``artifact.unblocked`` it published.
    It ends the scanner's job that did the work (``job_id``)."""

    event_type = "block.applied"
    job_id: Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
    block_id: BlockId | None = None
    import_id: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    created_blocks: Annotated[list[BlockId], msgspec.Meta(max_length=ADVISORIES_MAX)] = []
    blocked: ByteCount = 0
    unblocked: ByteCount = 0


# ---- downloads, quotas, retention -------------------------------------------------------------
@register
class DownloadRecorded(EventPayload, frozen=True, kw_only=True):
    """An artifact was downloaded (the who-pulled record)."""

    event_type = "download.recorded"
    artifact_id: ArtifactId
    repo_id: RepositoryId
    project_id: str
    digest: Digest
    purl: Purl | None = None
    principal: Principal
    # The client's address as the gateway saw it (for anonymous reads, the only name).
    address: Annotated[str, msgspec.Meta(max_length=64)] = ""


@register
class QuotaExceeded(EventPayload, frozen=True, kw_only=True):
    """An upload was refused because the repository's quota would be exceeded."""

    event_type = "quota.exceeded"
    repo_id: RepositoryId
    project_id: str
    kind: Literal["bytes", "artifacts"]
    limit: ByteCount
    used: ByteCount
    attempted: ByteCount
    principal: Principal


RetentionRule = Literal["keep_last", "max_age_days"]


class RetentionPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a retention policy keeps: of the artifacts whose path matches ``pattern`` (a
    glob; every artifact when absent), the newest ``keep_last`` per package name and/or
    those younger than ``max_age_days``. Promoted artifacts and artifacts pulled in the
    last ``keep_pulled_days`` are never deleted."""

    name: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}$")]
    pattern: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    keep_last: Annotated[int, msgspec.Meta(ge=1, le=100_000)] | None = None
    max_age_days: Annotated[int, msgspec.Meta(ge=1, le=36_500)] | None = None
    keep_pulled_days: Annotated[int, msgspec.Meta(ge=0, le=3650)] = 30
    enabled: bool = True


@register
class RetentionPolicySet(EventPayload, frozen=True, kw_only=True):
    """A repository's retention policy was created or replaced."""

    event_type = "retention.policy-set"
    id: RetentionPolicyId
    repo_id: RepositoryId
    policy: RetentionPolicy
    # The repository's project (project-scoped keys see their project's policies only).
    project_id: str | None = None


@register
class RetentionPolicyDeleted(EventPayload, frozen=True, kw_only=True):
    """A repository's retention policy was removed."""

    event_type = "retention.policy-deleted"
    id: RetentionPolicyId
    repo_id: RepositoryId


@register
class RetentionDeleted(EventPayload, frozen=True, kw_only=True):
    """Retention removed an artifact (an ``artifact.deleted`` with reason ``retention``
    follows for the same artifact)."""

    event_type = "retention.deleted"
    artifact_id: ArtifactId
    repo_id: RepositoryId
    policy_id: RetentionPolicyId
    digest: Digest
    path: ArtifactPath
