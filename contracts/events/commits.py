"""Events about commits: seen pushed (from GitHub or GitLab webhooks, or the
signature-verifier's repositories) and their signatures verified.

``commit.pushed`` tells the release gate which commit is the newest on a branch (the trust
badge's ``commit=HEAD``). ``commit.verified`` is the signature-verifier's verdict on a
commit's signature; the release gate requires it when the policy sets
``require_signed_commits`` or lists ``signature`` in ``required_evidence``.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from contracts.envelope import EventPayload, register
from contracts.events.scans import CommitSha, Repo

CommitSource = Literal["github", "gitlab", "git"]
Branch = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]


@register
class CommitPushed(EventPayload, frozen=True, kw_only=True):
    """A commit was pushed to ``branch`` of ``repo`` (one event per commit of a push, in
    push order; the last one is the branch's new head)."""

    event_type = "commit.pushed"
    repo: Repo
    commit: CommitSha
    branch: Branch
    source: CommitSource
    head: Annotated[bool, msgspec.Meta(description="The push's last commit: the branch head")]
    author: str = ""
    message: Annotated[str, msgspec.Meta(max_length=4096)] = ""
    url: str | None = None
    pushed_at: dt.datetime
    delivery_id: str | None = None


@register
class CommitVerified(EventPayload, frozen=True, kw_only=True):
    """The signature of a commit was checked: ``verified`` with ``reason`` ``valid``, or
    not, with GitHub's reasons (``unknown_key``, ``unverified_email``, ``bad_email``,
    ``expired_key``, ``not_signing_key``, ``malformed_signature``, ``invalid``,
    ``unknown_signature_type``). ``unsigned`` says the row was invalidated (its key was
    revoked) and reads as not stamped until another matching key is uploaded."""

    event_type = "commit.verified"
    repo: Repo
    commit: CommitSha
    verified: bool
    reason: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z_]{1,63}$")]
    key_id: str | None = None
    signer: str | None = None
    verified_at: dt.datetime
    # The uploaded key the signature was checked against (``gpgkey.added`` /
    # ``sshkey.added`` id) and its kind, when one matched.
    key_store_id: int | None = None
    signature_kind: Literal["openpgp", "ssh", "x509", "unknown"] | None = None
