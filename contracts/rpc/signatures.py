"""``svc.signature-verifier.*``: git mirrors, commits with their verification, and the
OpenPGP and SSH signing keys of users.

The gateway authenticates, applies roles and project scope (it owns projects and knows
which project names a repo), then calls these operations. Replies are the HTTP bodies as
they are (GitHub's shapes for commits and keys); the gateway adds only what it owns or
stitches (a commit's ``decision``, the ``Link`` header of a commits page).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from contracts.events.identity import Login
from contracts.events.scans import Repo
from contracts.events.signatures import (
    BranchName,
    CloneUrl,
    CredentialName,
    KeyStoreId,
    KeyTitle,
)

SERVICE = "signature-verifier"
MIRROR_PUT = "mirror_put"
MIRROR_GET = "mirror_get"
MIRROR_DELETE = "mirror_delete"
MIRROR_SYNC = "mirror_sync"
COMMITS_LIST = "commits_list"
COMMIT_GET = "commit_get"
GPG_KEY_ADD = "gpg_key_add"
GPG_KEYS_LIST = "gpg_keys_list"
GPG_KEY_GET = "gpg_key_get"
GPG_KEY_DELETE = "gpg_key_delete"
SSH_KEY_ADD = "ssh_key_add"
SSH_KEYS_LIST = "ssh_keys_list"
SSH_KEY_GET = "ssh_key_get"
SSH_KEY_DELETE = "ssh_key_delete"

PER_PAGE_MAX = 100
PER_PAGE_DEFAULT = 30
# Commit ids as a client may name them: a full SHA-1/SHA-256 or an unambiguous prefix.
ShaOrPrefix = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-fA-F]{4,64}$")]
# `sha=` of a listing: a branch, a tag or a commit (git's ref-name rules apply on top).
Revision = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
# `path=`: repository-relative, '/'-separated, no '..' segment (checked by the service).
RepoPath = Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]


# ---- mirrors -------------------------------------------------------------------------------
class MirrorBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``PUT /api/v1/repos/{owner}/{repo}/git``."""

    clone_url: CloneUrl
    default_branch: BranchName | None = None
    credential: CredentialName | None = None


class MirrorPutRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    repo: Repo
    # The project whose `repos` name this repo (the gateway found it).
    project_id: str
    mirror: MirrorBody


class MirrorRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``GET``/``DELETE …/git`` and ``POST …/sync``."""

    repo: Repo


FetchState = Literal["never_fetched", "queued", "fetching", "ok", "failed"]


class FetchProgress(msgspec.Struct, frozen=True, kw_only=True):
    received_objects: int = 0
    total_objects: int = 0
    indexed_deltas: int = 0
    total_deltas: int = 0
    received_bytes: int = 0


class FetchStatus(msgspec.Struct, frozen=True, kw_only=True):
    state: FetchState
    # When the last fetch started / ended (either way) / last succeeded.
    started_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    succeeded_at: dt.datetime | None = None
    # Why the last fetch failed (the old mirror was kept), without secrets.
    last_error: str | None = None
    progress: FetchProgress | None = None
    # The default branch's head after the last successful fetch.
    head: str | None = None


class MirrorView(msgspec.Struct, frozen=True, kw_only=True):
    """A repository's git mirror: its configuration (never the credential's value) and its
    fetch status."""

    repo: str
    project_id: str
    clone_url: str
    # As configured (None: the remote's HEAD) and as resolved by the last fetch.
    default_branch: str | None
    resolved_default_branch: str | None = None
    credential: str | None = None
    status: FetchStatus


class MirrorPutReply(msgspec.Struct, frozen=True, kw_only=True):
    """The reply to ``MIRROR_PUT``: the gateway answers ``mirror`` as the body, ``201`` when
    ``created`` (the repo had no mirror), else ``200``."""

    mirror: MirrorView
    created: bool


class MirrorSyncReply(msgspec.Struct, frozen=True, kw_only=True):
    """``202`` to ``POST …/sync``: the fetch is queued; poll the mirror for its status."""

    repo: str
    status: FetchStatus


# ---- commits -------------------------------------------------------------------------------
# The stream sequence of the newest event a caller saw change a repo's commits (a cache:
# ``commit.verified`` → ``verifications_at``, ``mirror.configured``/``removed`` →
# ``mirror_at``): the owner answers only once its read models applied it (else 503
# ``read_model_behind``), so an answer kept by the caller is never older than what it saw.
StreamPosition = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]


class CommitsListRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    repo: Repo
    sha: Revision | None = None
    path: RepoPath | None = None
    author: Annotated[str, msgspec.Meta(min_length=1, max_length=255)] | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    page: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 1
    per_page: Annotated[int, msgspec.Meta(ge=1, le=PER_PAGE_MAX)] = PER_PAGE_DEFAULT
    # See StreamPosition; 0: answer from the read models as they are.
    verifications_at: StreamPosition = 0
    mirror_at: StreamPosition = 0


class CommitGetRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    repo: Repo
    sha: ShaOrPrefix
    verifications_at: StreamPosition = 0
    mirror_at: StreamPosition = 0


class GitPerson(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    email: str
    # With the offset the commit recorded.
    date: dt.datetime


VerificationReason = Literal[
    "valid",
    "unsigned",
    "unknown_key",
    "unverified_email",
    "bad_email",
    "expired_key",
    "not_signing_key",
    "malformed_signature",
    "invalid",
    "unknown_signature_type",
]


class VerificationView(msgspec.Struct, frozen=True, kw_only=True):
    """Always present. ``verified`` only with ``reason == "valid"``; ``signature`` and
    ``payload`` are present whenever the commit carries a signature (stamped or not);
    ``verified_at`` is None for unsigned and not yet stamped commits."""

    verified: bool
    reason: VerificationReason
    signature: str | None
    payload: str | None
    verified_at: dt.datetime | None


class CommitView(msgspec.Struct, frozen=True, kw_only=True):
    """An entry of ``GET …/commits``."""

    sha: str
    short_sha: str
    subject: str
    body: str
    author: GitPerson
    verification: VerificationView


FileStatus = Literal["A", "M", "D", "R", "C", "T"]


class CommitFile(msgspec.Struct, frozen=True, kw_only=True):
    path: str
    old_path: str | None
    status: FileStatus
    additions: int
    deletions: int
    binary: bool


class CommitStats(msgspec.Struct, frozen=True, kw_only=True):
    additions: int
    deletions: int
    total: int


class CommitDecision(msgspec.Struct, frozen=True, kw_only=True):
    """Stitched in by the gateway from release-decision (absent when none was made)."""

    decision: Literal["SHIP", "NO_SHIP"]
    blockers: int


class CommitDetailView(msgspec.Struct, frozen=True, kw_only=True):
    """``GET …/commits/{sha}``."""

    sha: str
    short_sha: str
    subject: str
    body: str
    author: GitPerson
    committer: GitPerson
    parents: list[str]
    tree_sha: str
    files: list[CommitFile]
    stats: CommitStats
    verification: VerificationView
    decision: CommitDecision | msgspec.UnsetType = msgspec.UNSET


class CommitsPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page; ``has_next`` tells the gateway whether to send ``Link: rel="next"``."""

    items: list[CommitView]
    has_next: bool


# ---- keys ----------------------------------------------------------------------------------
class GpgKeyBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``POST /api/v1/user/gpg_keys``."""

    armored_public_key: Annotated[str, msgspec.Meta(min_length=1)]
    name: KeyTitle | None = None


class GpgKeyAddRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    login: Login
    key: GpgKeyBody


class SshKeyBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``POST /api/v1/user/ssh_signing_keys``."""

    key: Annotated[str, msgspec.Meta(min_length=1)]
    title: KeyTitle = ""


class SshKeyAddRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    login: Login
    key: SshKeyBody


class KeysListRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    login: Login
    page: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 1
    per_page: Annotated[int, msgspec.Meta(ge=1, le=PER_PAGE_MAX)] = PER_PAGE_DEFAULT


class KeyRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One key of ``login`` (None: any user's, for ADMIN reads by id)."""

    id: KeyStoreId
    login: Login | None = None


BackfillState = Literal["pending", "running", "done"]


class Backfill(msgspec.Struct, frozen=True, kw_only=True):
    """Re-verification of the cached commits whose signature names the key."""

    state: BackfillState
    done: int
    total: int


class GpgKeyEmail(msgspec.Struct, frozen=True, kw_only=True):
    email: str
    verified: bool


class GpgSubkey(msgspec.Struct, frozen=True, kw_only=True):
    id: int | None
    primary_key_id: int
    key_id: str
    public_key: str
    emails: list[GpgKeyEmail]
    subkeys: list[GpgSubkey]
    can_sign: bool
    can_certify: bool
    can_encrypt_comms: bool
    can_encrypt_storage: bool
    created_at: str
    expires_at: str | None
    raw_key: str | None
    revoked: bool


class GpgKey(msgspec.Struct, frozen=True, kw_only=True):
    """GitHub's GPG key (``GET /user/gpg_keys/{id}``), plus the backfill progress."""

    id: int
    name: str | None
    primary_key_id: None
    key_id: str
    public_key: str
    emails: list[GpgKeyEmail]
    subkeys: list[GpgSubkey]
    can_sign: bool
    can_certify: bool
    can_encrypt_comms: bool
    can_encrypt_storage: bool
    created_at: str
    expires_at: str | None
    raw_key: str
    revoked: bool
    backfill: Backfill


class SshSigningKey(msgspec.Struct, frozen=True, kw_only=True):
    """GitHub's SSH signing key, plus the fingerprint and the backfill progress."""

    id: int
    key: str
    title: str
    created_at: str
    fingerprint: str
    backfill: Backfill


class GpgKeysPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[GpgKey]
    has_next: bool


class SshKeysPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[SshSigningKey]
    has_next: bool
