"""``svc.scanner.registry_*`` / ``artifact_*`` / ``block_*`` / ``quarantine_*``: the artifact
registry's metadata, owned by the scanner (repositories, artifacts, blocks, quarantine).

The gateway is the edge of the package protocols (``/pypi/…``, ``/generic/…``): it
authenticates, streams the bytes into the artifact blob store (``shared.artifact_blobs``),
inspects them (a wheel's METADATA, the SBOMs it carries) and then *registers* the stored
artifact here; a download asks here first (``artifact_fetch``: allowed, blocked or
quarantined) and then streams the blob. Replies are the JSON API's bodies as they are.

Errors (``shared.errors`` codes, mapped to HTTP by the gateway):
``repository_not_found`` 404, ``repository_slug_taken`` 409, ``artifact_not_found`` 404,
``artifact_exists`` 409 (a file name is never uploaded twice, as on PyPI),
``repository_format_mismatch`` 400, ``quota_exceeded`` 413 (bytes) / 507 (artifacts),
``block_not_found`` 404, ``not_quarantined`` 409, ``promotion_blocked`` 409 (with
``blockers``), ``override_not_allowed`` 403.

Replies per operation: ``repository_create`` / ``_get`` / ``_update`` / ``_delete``
``Repository`` (delete: as it was), ``repository_list`` ``RepositoryPage``;
``artifact_register`` / ``artifact_get`` / ``artifact_remove`` (as it was) ``Artifact``,
``artifact_fetch`` ``ArtifactFetchReply``, ``artifact_index`` ``ArtifactIndexReply``,
``artifact_list`` ``ArtifactPage``, ``artifact_digest_uses`` ``DigestUses``;
``block_create`` / ``_get`` / ``_update`` / ``_delete`` ``Block``, ``block_list``
``BlockPage``; ``quarantine_list`` ``ArtifactPage``, ``quarantine_release`` /
``quarantine_reject`` ``Artifact`` (reject: as it was); ``artifact_promote`` ``Artifact``
(the copy). A ``quota_exceeded`` problem carries ``quota`` (bytes | artifacts), ``limit``,
``used``, ``attempted``.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from contracts.events.registry import (
    ArtifactId,
    ArtifactKind,
    ArtifactPath,
    BlockId,
    ByteCount,
    CustomerMessage,
    Description,
    NamePattern,
    PackageName,
    PackageVersion,
    Principal,
    Provenance,
    Purl,
    Reason,
    RegistryFormat,
    RepositoryId,
    RepoSlug,
    RepoVisibility,
    VersRange,
)
from contracts.events.releases import BLOCKERS_MAX, Blocker, Decision
from contracts.events.scans import Digest

SERVICE = "scanner"
# Repositories.
REPOSITORY_CREATE = "repository_create"
REPOSITORY_LIST = "repository_list"
REPOSITORY_GET = "repository_get"
REPOSITORY_UPDATE = "repository_update"
REPOSITORY_DELETE = "repository_delete"
# Artifacts: the package protocols' operations, then the metadata API's.
ARTIFACT_REGISTER = "artifact_register"
ARTIFACT_FETCH = "artifact_fetch"
ARTIFACT_INDEX = "artifact_index"
ARTIFACT_REMOVE = "artifact_remove"
ARTIFACT_LIST = "artifact_list"
ARTIFACT_GET = "artifact_get"
ARTIFACT_PROMOTE = "artifact_promote"
# How many artifacts name a blob (the gateway deletes an unnamed blob after a DELETE).
ARTIFACT_DIGEST_USES = "artifact_digest_uses"
# Blocks and quarantine.
BLOCK_CREATE = "block_create"
BLOCK_LIST = "block_list"
BLOCK_GET = "block_get"
BLOCK_UPDATE = "block_update"
BLOCK_DELETE = "block_delete"
QUARANTINE_LIST = "quarantine_list"
QUARANTINE_RELEASE = "quarantine_release"
QUARANTINE_REJECT = "quarantine_reject"

LIMIT_MAX = 500
LIMIT_DEFAULT = 50
Limit = Annotated[int, msgspec.Meta(ge=1, le=LIMIT_MAX)]
Cursor = Annotated[str, msgspec.Meta(max_length=512)]
Query = Annotated[str, msgspec.Meta(max_length=200)]


# ---- repositories ----------------------------------------------------------------------------
class RepositoryBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``POST /api/v1/repos``. ``project_id`` is a project id or slug (the gateway resolves
    it and sends the id)."""

    project_id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    slug: RepoSlug
    format: RegistryFormat
    visibility: RepoVisibility = "private"
    quarantine_new: bool = False
    description: Description = ""
    quota_bytes: ByteCount | None = None
    quota_artifacts: ByteCount | None = None


class RepositoryPatch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``PATCH /api/v1/repos/{id}`` (slug, project and format never change)."""

    visibility: RepoVisibility | msgspec.UnsetType = msgspec.UNSET
    quarantine_new: bool | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType = msgspec.UNSET
    quota_bytes: ByteCount | msgspec.UnsetType | None = msgspec.UNSET
    quota_artifacts: ByteCount | msgspec.UnsetType | None = msgspec.UNSET


class Repository(msgspec.Struct, frozen=True, kw_only=True):
    id: RepositoryId
    project_id: str
    slug: RepoSlug
    format: RegistryFormat
    visibility: RepoVisibility
    quarantine_new: bool
    description: str
    quota_bytes: int | None
    quota_artifacts: int | None
    used_bytes: int
    artifact_count: int
    created_at: dt.datetime
    updated_at: dt.datetime
    # The ETag (stream sequence of the repository's last change).
    revision: int


class RepositoryCreateRequest(msgspec.Struct, frozen=True, kw_only=True):
    body: RepositoryBody  # project_id already resolved to the id


class RepositoryListRequest(msgspec.Struct, frozen=True, kw_only=True):
    # A project-scoped caller sees its project only (the gateway fills project_ids).
    project_ids: list[str] | None = None
    slug: RepoSlug | None = None
    cursor: Cursor | None = None
    limit: Limit = LIMIT_DEFAULT


class RepositoryRef(msgspec.Struct, frozen=True, kw_only=True):
    """A repository by id, or by (project id, slug) as the package protocols' paths name
    it (``/pypi/<project>/<repo>/``: the gateway resolves the project's slug to its id)."""

    id: RepositoryId | None = None
    project_id: str | None = None
    slug: RepoSlug | None = None


class RepositoryUpdateRequest(msgspec.Struct, frozen=True, kw_only=True):
    id: RepositoryId
    patch: RepositoryPatch
    # If-Match: the revision the caller saw (None: unconditional).
    if_revision: int | None = None
    # If-Match as the gateway reads the header: the revisions of its tags (None: no header
    # or ``*``; empty: tags none of which is ours, so nothing matches).
    if_match: list[int] | None = None


class RepositoryDeleteRequest(msgspec.Struct, frozen=True, kw_only=True):
    """``DELETE /api/v1/repos/{id}``; replies the repository as it was."""

    id: RepositoryId
    if_revision: int | None = None
    if_match: list[int] | None = None


class RepositoryPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Repository]
    next_cursor: str | None


# ---- artifacts: the package protocols -----------------------------------------------------------
class ArtifactRegisterRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A stored upload (its bytes already in the blob store under ``digest``), to be
    recorded in ``repo``. The scanner checks the repository's format, that ``path`` is new
    (409 ``artifact_exists`` otherwise), the quotas, then publishes ``artifact.uploaded``
    and replies once its projection has applied it."""

    repo: RepositoryRef
    path: ArtifactPath
    kind: ArtifactKind
    digest: Digest
    size: ByteCount
    name: PackageName | None = None
    version: PackageVersion | None = None
    purl: Purl | None = None
    metadata_digest: Digest | None = None
    requires_python: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    sbom_digests: list[Digest] = []
    provenance: Provenance | None = None
    uploaded_by: Principal


class Artifact(msgspec.Struct, frozen=True, kw_only=True):
    id: ArtifactId
    repo_id: RepositoryId
    project_id: str
    format: RegistryFormat
    path: str
    kind: ArtifactKind
    name: str | None
    version: str | None
    purl: str | None
    digest: str
    size: int
    metadata_digest: str | None
    requires_python: str | None
    provenance: Provenance | None
    uploaded_by: str
    uploaded_at: dt.datetime
    # pending: scan not finished; passed / blocked / failed: artifact.scanned's verdict.
    scan_status: Literal["pending", "passed", "blocked", "failed"]
    quarantined: bool
    # What the scan on upload found: the scan of the SBOM it carried, the advisories that
    # name its own purl and the malicious-package ones among them.
    scan_id: str | None = None
    advisories: list[str] = []
    malicious: list[str] = []
    # A promotion's copy: the artifact it was copied from.
    promoted_from: str | None = None
    # Downloads recorded (``download.recorded``) and the newest one's time: filled in by
    # ``artifact_get`` (the who-pulled projection counts them).
    pull_count: int = 0
    last_pulled_at: dt.datetime | None = None


class BlockInfo(msgspec.Struct, frozen=True, kw_only=True):
    """The why-blocked envelope of a 451 (``public_url`` is added by the gateway)."""

    block_id: BlockId
    reason: str
    customer_message: str
    blocked_until: dt.datetime | None


class ArtifactFetchRequest(msgspec.Struct, frozen=True, kw_only=True):
    repo: RepositoryRef
    path: ArtifactPath


class ArtifactFetchReply(msgspec.Struct, frozen=True, kw_only=True):
    """``allowed``: stream ``artifact.digest``. ``blocked``: 451 with ``block``.
    ``quarantined``: 451 too, with a block-shaped explanation (``block.block_id`` is the
    artifact's quarantine, not a block)."""

    verdict: Literal["allowed", "blocked", "quarantined"]
    artifact: Artifact
    repository: Repository
    block: BlockInfo | None = None
    # The stream sequence through which the registry read model had applied every
    # ``repository.*``, ``artifact.*`` and ``block.*`` event when the answer was read (0:
    # unknown). The gateway keeps an answer in its cache only when it has applied no newer
    # event for it (``services.gateway.packages.read_cache``).
    applied_through: int = 0


class ArtifactIndexRequest(msgspec.Struct, frozen=True, kw_only=True):
    """The simple index: every package name of ``repo`` (``name`` None), or the files of
    one package (``name`` normalized as PEP 503 says)."""

    repo: RepositoryRef
    name: PackageName | None = None


class IndexFile(msgspec.Struct, frozen=True, kw_only=True):
    path: str
    digest: str
    size: int
    requires_python: str | None
    metadata_digest: str | None
    uploaded_at: dt.datetime
    # Quarantined or blocked files are listed (pip shows why it cannot get them) but their
    # downloads answer 451.
    available: bool


class ArtifactIndexReply(msgspec.Struct, frozen=True, kw_only=True):
    repository: Repository
    # name=None: the normalized package names; name given: its files (404 when none).
    names: list[str] = []
    files: list[IndexFile] = []
    # Last change of the repository's artifacts (stream sequence): the index's ETag.
    revision: int = 0
    # The stream sequence through which the registry read model had applied every
    # ``repository.*``, ``artifact.*`` and ``block.*`` event when the answer was read (0:
    # unknown). The gateway keeps an answer in its cache only when it has applied no newer
    # event for it (``services.gateway.packages.read_cache``).
    applied_through: int = 0


class ArtifactRemoveRequest(msgspec.Struct, frozen=True, kw_only=True):
    """``DELETE`` of a generic path (or a pypi file by an admin)."""

    repo: RepositoryRef
    path: ArtifactPath


class DigestUsesRequest(msgspec.Struct, frozen=True, kw_only=True):
    digest: Digest


class DigestUses(msgspec.Struct, frozen=True, kw_only=True):
    """The artifacts (not deleted, in any repository) whose content or core-metadata file
    is the blob ``digest``: 0 means nothing names it any more."""

    digest: str
    artifacts: int


# ---- artifacts: the metadata API ----------------------------------------------------------------
class ArtifactListRequest(msgspec.Struct, frozen=True, kw_only=True):
    project_ids: list[str] | None = None
    repo_id: RepositoryId | None = None
    q: Query | None = None
    cursor: Cursor | None = None
    limit: Limit = LIMIT_DEFAULT


class ArtifactPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Artifact]
    next_cursor: str | None


class ArtifactGetRequest(msgspec.Struct, frozen=True, kw_only=True):
    id: ArtifactId


# ---- promotion -------------------------------------------------------------------------------
class ArtifactPromoteBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``POST /api/v1/artifacts/{id}/promote``: copy the artifact (by digest, same path)
    into ``to_repo`` (a repository id, or the slug of a repository of the artifact's
    project) of the same format. ``override`` (APPROVER) promotes over a NO_SHIP decision
    and then needs ``reason``; a blocked or quarantined artifact is never promoted."""

    to_repo: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    reason: Reason | None = None
    override: bool = False


class PromotionDecision(msgspec.Struct, frozen=True, kw_only=True):
    """The artifact's release decision as the gateway read it from release-decision
    (services do not call each other: the gateway asks and passes it on)."""

    decision: Decision
    blockers: Annotated[list[Blocker], msgspec.Meta(max_length=BLOCKERS_MAX)] = []


class ArtifactPromoteRequest(msgspec.Struct, frozen=True, kw_only=True):
    id: ArtifactId
    body: ArtifactPromoteBody
    decision: PromotionDecision
    # A project-scoped caller promotes within its project only.
    allowed_project: str | None = None


# ---- blocks ----------------------------------------------------------------------------------
class BlockBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``POST /api/admin/security``: exactly one of ``purl``, ``digest``, ``name_pattern``."""

    purl: Purl | None = None
    versions: VersRange | None = None
    digest: Digest | None = None
    name_pattern: NamePattern | None = None
    format: RegistryFormat | None = None
    reason: Reason
    customer_message: CustomerMessage = ""
    blocked_until: dt.datetime | None = None


class BlockPatch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    versions: VersRange | msgspec.UnsetType | None = msgspec.UNSET
    reason: Reason | msgspec.UnsetType = msgspec.UNSET
    customer_message: CustomerMessage | msgspec.UnsetType = msgspec.UNSET
    blocked_until: dt.datetime | msgspec.UnsetType | None = msgspec.UNSET


class Block(msgspec.Struct, frozen=True, kw_only=True):
    id: BlockId
    purl: str | None
    versions: str | None
    digest: str | None
    name_pattern: str | None
    format: RegistryFormat | None
    reason: str
    customer_message: str
    blocked_until: dt.datetime | None
    source: Literal["manual", "malicious_advisory"]
    advisory_id: str | None
    created_at: dt.datetime
    created_by: str
    hits: int
    revision: int


class BlockRequest(msgspec.Struct, frozen=True, kw_only=True):
    id: BlockId


class BlockUpdateRequest(msgspec.Struct, frozen=True, kw_only=True):
    id: BlockId
    patch: BlockPatch
    if_revision: int | None = None
    if_match: list[int] | None = None


class BlockDeleteRequest(msgspec.Struct, frozen=True, kw_only=True):
    """``DELETE /api/admin/security/{block_id}``; replies the block as it was."""

    id: BlockId
    if_revision: int | None = None
    if_match: list[int] | None = None


class BlockListRequest(msgspec.Struct, frozen=True, kw_only=True):
    cursor: Cursor | None = None
    limit: Limit = LIMIT_DEFAULT


class BlockPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Block]
    next_cursor: str | None


# ---- quarantine ------------------------------------------------------------------------------
class QuarantineListRequest(msgspec.Struct, frozen=True, kw_only=True):
    project_ids: list[str] | None = None
    cursor: Cursor | None = None
    limit: Limit = LIMIT_DEFAULT


class QuarantineDecision(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``POST /api/admin/quarantine/{artifact_id}/release`` or ``…/reject``."""

    reason: Reason


class QuarantineDecisionRequest(msgspec.Struct, frozen=True, kw_only=True):
    artifact_id: ArtifactId
    decision: QuarantineDecision


__all__ = [
    "ArtifactId",
    "BlockId",
    "Digest",
    "PackageName",
    "PackageVersion",
]
