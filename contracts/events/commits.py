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
    not, with GitHub's reasons (``unsigned``, ``unknown_key``, ``bad_signature``,
    ``expired_key``, ``not_signing_key``, ``unverified_email`` …)."""

    event_type = "commit.verified"
    repo: Repo
    commit: CommitSha
    verified: bool
    reason: Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z_]{1,63}$")]
    key_id: str | None = None
    signer: str | None = None
    verified_at: dt.datetime
