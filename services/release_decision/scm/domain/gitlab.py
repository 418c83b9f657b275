"""Reading GitLab webhook deliveries (``Push Hook``, ``Merge Request Hook``).

A GitLab project is a repo here under its ``path_with_namespace``; a project in a nested
group (``group/sub/project``) has no ``owner/name`` form and its deliveries are ignored
with that reason.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

import msgspec

from contracts.events.commits import CommitPushed
from contracts.events.scans import CommitSha
from contracts.events.scm import PullRequestUpdated
from services.release_decision.scm.domain.deliveries import (
    REF_MAX,
    ZERO_SHA,
    PullNumberRead,
    Reading,
    branch_of,
    cap_action,
    capped,
    decode_payload,
    ignored,
)

PUSH_HOOK = "Push Hook"
MERGE_REQUEST_HOOK = "Merge Request Hook"
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}/[A-Za-z0-9._-]{1,100}$")
_STATES = {"opened": "open", "merged": "merged"}


class _Project(msgspec.Struct, kw_only=True):
    path_with_namespace: str


class _Author(msgspec.Struct, kw_only=True):
    name: str | None = None


class _Commit(msgspec.Struct, kw_only=True):
    id: CommitSha
    message: str = ""
    url: str | None = None
    author: _Author | None = None


class _Push(msgspec.Struct, kw_only=True):
    ref: Annotated[str, msgspec.Meta(max_length=REF_MAX)]
    after: CommitSha
    project: _Project
    commits: list[_Commit] = []


class _LastCommit(msgspec.Struct, kw_only=True):
    id: CommitSha


class _MergeRequest(msgspec.Struct, kw_only=True):
    iid: PullNumberRead
    state: str
    action: str | None = None
    title: str = ""
    url: str | None = None
    source_branch: str = ""
    target_branch: str = ""
    last_commit: _LastCommit


class _MergeEvent(msgspec.Struct, kw_only=True):
    project: _Project
    object_attributes: _MergeRequest


class _Any(msgspec.Struct, kw_only=True):
    object_kind: str | None = None


def read_gitlab(event: str, body: bytes, *, delivery_id: str, now: dt.datetime) -> Reading:
    """The events one authenticated GitLab delivery stands for (``now``: received at)."""
    if event == PUSH_HOOK:
        return _push(decode_payload(body, _Push), delivery_id=delivery_id, now=now)
    if event == MERGE_REQUEST_HOOK:
        return _merge(decode_payload(body, _MergeEvent), delivery_id=delivery_id, now=now)
    decode_payload(body, _Any)
    return ignored(f"event {event!r} is not handled")


def _repo(project: _Project) -> str | None:
    path = project.path_with_namespace
    return path if _REPO.match(path) else None


def _push(push: _Push, *, delivery_id: str, now: dt.datetime) -> Reading:
    repo = _repo(push.project)
    if repo is None:
        return ignored(f"project {push.project.path_with_namespace!r} is not an owner/name repo")
    branch = branch_of(push.ref)
    if branch is None:
        return ignored(f"{push.ref!r} is not a branch", repo=repo)
    if push.after == ZERO_SHA:
        return ignored("the branch was deleted", repo=repo)
    commits = [c for c in push.commits if c.id != push.after]
    head = next((c for c in push.commits if c.id == push.after), None) or _Commit(id=push.after)
    events = tuple(
        CommitPushed(
            repo=repo,
            commit=commit.id,
            branch=branch,
            source="gitlab",
            head=commit is head,
            author=(commit.author.name or "") if commit.author else "",
            message=capped(commit.message),
            url=commit.url,
            pushed_at=now,
            delivery_id=delivery_id,
        )
        for commit in (*commits, head)
    )
    return Reading(outcome="recorded", repo=repo, events=events)


def _merge(event: _MergeEvent, *, delivery_id: str, now: dt.datetime) -> Reading:
    repo = _repo(event.project)
    merge = event.object_attributes
    if repo is None:
        return ignored(
            f"project {event.project.path_with_namespace!r} is not an owner/name repo",
            action=merge.action,
        )
    action = cap_action(merge.action) or "update"
    updated = PullRequestUpdated(
        provider="gitlab",
        repo=repo,
        number=merge.iid,
        action=action,
        state=_STATES.get(merge.state, "closed"),  # type: ignore[arg-type]
        head_sha=merge.last_commit.id,
        head_branch=merge.source_branch[:255],
        base_branch=merge.target_branch[:255],
        title=merge.title[:1024],
        url=merge.url,
        delivery_id=delivery_id,
        updated_at=now,
    )
    return Reading(outcome="recorded", action=action, repo=repo, events=(updated,))
