"""Events owned by the signature-verifier: git mirrors of repositories, and the signing keys
(OpenPGP and SSH) that commit signatures are verified against.

``mirror.*`` record what an operator configured (how fetches go is operational state,
readable on the mirror), and ``mirror.fetched`` that a fetch changed the mirror's refs.
``gpgkey.*`` and ``sshkey.*`` carry the public key itself, so a replay rebuilds the key
store from the stream alone; a key is bounded
(:data:`ARMORED_KEY_MAX_CHARS`) well under the NATS payload limit.
``commit.verified`` (``contracts.events.commits``) is the verdict on one commit.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from contracts.envelope import EventPayload, register
from contracts.events.identity import Login
from contracts.events.scans import CommitSha, Repo

# An armoured OpenPGP public key (or an SSH public key line) an upload may carry: GitHub's
# keys with many user ids and subkeys stay far below it; a NATS message is at most 1 MiB.
ARMORED_KEY_MAX_CHARS = 256 * 1024
SSH_KEY_MAX_CHARS = 16 * 1024

CloneUrl = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=2048,
        description="An https or ssh URL (or scp-like user@host:path), a file URL or a local path",
    ),
]
BranchName = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
CredentialName = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="The name of a token in the settings (GATEHOUSE_GIT_CREDENTIALS), "
        "never the token itself",
    ),
]
KeyStoreId = Annotated[
    int, msgspec.Meta(ge=1, le=2**53, description="The key's id in Gatehouse (GitHub's `id`)")
]
KeyTitle = Annotated[str, msgspec.Meta(max_length=255)]


@register
class MirrorConfigured(EventPayload, frozen=True, kw_only=True):
    """The git mirror of ``repo`` was configured (created, or its URL, branch or credential
    changed). The signature-verifier fetches it and verifies its commits."""

    event_type = "mirror.configured"
    repo: Repo
    project_id: str
    clone_url: CloneUrl
    # None: follow the remote's HEAD.
    default_branch: BranchName | None = None
    credential: CredentialName | None = None


@register
class MirrorRemoved(EventPayload, frozen=True, kw_only=True):
    """The git mirror of ``repo`` was dropped (its verification rows stay)."""

    event_type = "mirror.removed"
    repo: Repo


@register
class MirrorFetched(EventPayload, frozen=True, kw_only=True):
    """A fetch of ``repo``'s mirror moved, created or deleted refs (branches or tags), so
    what the commits API lists for it may have changed. Not published for a fetch that
    changed nothing. Its id is derived from (repo, refs before, refs after): a retried
    fetch job publishes the same id."""

    event_type = "mirror.fetched"
    repo: Repo
    # The default branch's commit after the fetch; None while the remote has no branch.
    head: CommitSha | None = None
    refs_changed: Annotated[
        int, msgspec.Meta(ge=1, description="Refs created, moved or deleted by the fetch")
    ]


@register
class MirrorSyncRequested(EventPayload, frozen=True, kw_only=True):
    """Someone asked for a fetch of ``repo`` now (``POST …/sync``)."""

    event_type = "mirror.sync-requested"
    repo: Repo


@register
class GpgKeyAdded(EventPayload, frozen=True, kw_only=True):
    """An OpenPGP public key was uploaded for user ``login``. Commits whose signature names
    the key (primary or a subkey) are re-verified."""

    event_type = "gpgkey.added"
    id: KeyStoreId
    login: Login
    # Upper-case 16-hex-digit key ids: the primary key's, then its subkeys'.
    key_id: Annotated[str, msgspec.Meta(pattern=r"^[0-9A-F]{16}$")]
    subkey_ids: list[Annotated[str, msgspec.Meta(pattern=r"^[0-9A-F]{16}$")]] = []
    name: KeyTitle | None = None
    armored_public_key: Annotated[str, msgspec.Meta(max_length=ARMORED_KEY_MAX_CHARS)]
    added_at: dt.datetime


@register
class GpgKeyRevoked(EventPayload, frozen=True, kw_only=True):
    """An OpenPGP key was deleted by its owner or an admin: commits it verified read
    ``unsigned`` until another matching key is uploaded."""

    event_type = "gpgkey.revoked"
    id: KeyStoreId
    login: Login
    key_id: Annotated[str, msgspec.Meta(pattern=r"^[0-9A-F]{16}$")]


@register
class SshKeyAdded(EventPayload, frozen=True, kw_only=True):
    """An SSH signing key was uploaded for user ``login``."""

    event_type = "sshkey.added"
    id: KeyStoreId
    login: Login
    title: KeyTitle = ""
    # The public key line as uploaded, normalised to ``<type> <base64>`` (comment dropped).
    key: Annotated[str, msgspec.Meta(max_length=SSH_KEY_MAX_CHARS)]
    # ``SHA256:<base64 without padding>``, as ``ssh-keygen -l`` prints it.
    fingerprint: Annotated[str, msgspec.Meta(pattern=r"^SHA256:[A-Za-z0-9+/]{43}$")]
    added_at: dt.datetime


@register
class SshKeyRevoked(EventPayload, frozen=True, kw_only=True):
    """An SSH signing key was deleted: commits it verified read ``unsigned`` until another
    matching key is uploaded."""

    event_type = "sshkey.revoked"
    id: KeyStoreId
    login: Login
    fingerprint: Annotated[str, msgspec.Meta(pattern=r"^SHA256:[A-Za-z0-9+/]{43}$")]
