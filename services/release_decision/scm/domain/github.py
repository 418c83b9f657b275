"""Reading GitHub webhook deliveries (``push``, ``pull_request``, ``check_run``, ``ping``).

The Structs hold only the fields Gatehouse uses and accept every other field: GitHub adds
fields to its payloads freely. Their constrained types (repo names, commit ids) are checked
while decoding, so a malformed payload is refused before anything is published.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from typing import Annotated

import msgspec

from contracts.events.commits import CommitPushed
from contracts.events.scans import CommitSha, Repo
from contracts.events.scm import CheckRerequested, PullRequestUpdated, PullState
from services.release_decision.scm.domain.deliveries import (
    REF_MAX,
    ZERO_SHA,
    InvalidJson,
    PullNumberRead,
    Reading,
    branch_of,
    capped,
    decode_payload,
    ignored,
)

FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
# The name of Gatehouse's check run; a re-run request of another app's check is not ours.
CHECK_NAME = "Gatehouse release gate"
# Pull request actions recorded (the head or the state may have changed); others are ignored.
PULL_ACTIONS = frozenset(
    {"opened", "synchronize", "reopened", "edited", "closed", "ready_for_review"}
)


class _Repository(msgspec.Struct, kw_only=True):
    full_name: Repo


class _Person(msgspec.Struct, kw_only=True):
    name: str | None = None
    username: str | None = None


class _Commit(msgspec.Struct, kw_only=True):
    id: CommitSha
    message: str = ""
    url: str | None = None
    author: _Person | None = None


class _Push(msgspec.Struct, kw_only=True):
    ref: Annotated[str, msgspec.Meta(max_length=REF_MAX)]
    after: CommitSha
    deleted: bool = False
    repository: _Repository
    commits: list[_Commit] = []
    head_commit: _Commit | None = None


class _Ref(msgspec.Struct, kw_only=True):
    sha: CommitSha
    ref: str = ""


class _Base(msgspec.Struct, kw_only=True):
    ref: str = ""


class _PullRequest(msgspec.Struct, kw_only=True):
    number: PullNumberRead
    state: str
    merged: bool | None = None
    title: str = ""
    html_url: str | None = None
    head: _Ref
    base: _Base | None = None
    updated_at: str | None = None


class _PullEvent(msgspec.Struct, kw_only=True):
    action: str
    pull_request: _PullRequest
    repository: _Repository


class _CheckRunPull(msgspec.Struct, kw_only=True):
    number: PullNumberRead


class _CheckRun(msgspec.Struct, kw_only=True):
    id: int | None = None
    name: str
    head_sha: CommitSha
    pull_requests: list[_CheckRunPull] = []


class _CheckRunEvent(msgspec.Struct, kw_only=True):
    action: str
    check_run: _CheckRun
    repository: _Repository


class _Any(msgspec.Struct, kw_only=True):
    action: str | None = None


def json_body(body: bytes, media_type: str) -> bytes:
    """The JSON document of a delivery; GitHub's form encoding puts it in ``payload``."""
    if media_type != FORM_MEDIA_TYPE:
        return body
    try:
        form = urllib.parse.parse_qs(body.decode("utf-8"), strict_parsing=True)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidJson(f"the form body cannot be read: {exc}") from exc
    payload = form.get("payload")
    if not payload:
        raise InvalidJson("the form body has no payload field")
    return payload[0].encode()


def read_github(
    event: str, body: bytes, *, media_type: str, delivery_id: str, now: dt.datetime
) -> Reading:
    """The events one authenticated GitHub delivery stands for (``now``: received at)."""
    data = json_body(body, media_type)
    if event == "ping":
        decode_payload(data, _Any)
        return Reading(outcome="pong")
    if event == "push":
        return _push(decode_payload(data, _Push), delivery_id=delivery_id, now=now)
    if event == "pull_request":
        return _pull(decode_payload(data, _PullEvent), delivery_id=delivery_id, now=now)
    if event == "check_run":
        return _check_run(decode_payload(data, _CheckRunEvent), delivery_id=delivery_id, now=now)
    action = decode_payload(data, _Any).action
    return ignored(f"event {event!r} is not handled", action=action)


def _push(push: _Push, *, delivery_id: str, now: dt.datetime) -> Reading:
    repo = push.repository.full_name
    branch = branch_of(push.ref)
    if branch is None:
        return ignored(f"{push.ref!r} is not a branch", repo=repo)
    if push.deleted or push.after == ZERO_SHA:
        return ignored("the branch was deleted", repo=repo)
    # Push order, the new head (``after``) last and the only one with head=true.
    commits = [c for c in push.commits if c.id != push.after]
    head = next((c for c in push.commits if c.id == push.after), None) or push.head_commit
    if head is None or head.id != push.after:
        head = _Commit(id=push.after)
    events = tuple(
        CommitPushed(
            repo=repo,
            commit=commit.id,
            branch=branch,
            source="github",
            head=commit is head,
            author=_author(commit.author),
            message=capped(commit.message),
            url=commit.url,
            pushed_at=now,
            delivery_id=delivery_id,
        )
        for commit in (*commits, head)
    )
    return Reading(outcome="recorded", repo=repo, events=events)


def _author(person: _Person | None) -> str:
    if person is None:
        return ""
    return person.username or person.name or ""


def _pull(event: _PullEvent, *, delivery_id: str, now: dt.datetime) -> Reading:
    repo = event.repository.full_name
    if event.action not in PULL_ACTIONS:
        return ignored(
            f"pull_request action {event.action!r} is not handled", action=event.action, repo=repo
        )
    pull = event.pull_request
    state: PullState = "merged" if pull.merged else ("open" if pull.state == "open" else "closed")
    updated = PullRequestUpdated(
        provider="github",
        repo=repo,
        number=pull.number,
        action=event.action,
        state=state,
        head_sha=pull.head.sha,
        head_branch=pull.head.ref[:255],
        base_branch=pull.base.ref[:255] if pull.base else "",
        title=pull.title[:1024],
        url=pull.html_url,
        delivery_id=delivery_id,
        updated_at=now,
        changed_at=_time(pull.updated_at),
    )
    return Reading(outcome="recorded", action=event.action, repo=repo, events=(updated,))


def _time(text: str | None) -> dt.datetime | None:
    """GitHub's ISO 8601 time (``2026-11-25T12:00:00Z``) in UTC; None when absent or not one
    (the order guard is then skipped rather than the delivery refused)."""
    if not text:
        return None
    try:
        at = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return at.astimezone(dt.UTC) if at.tzinfo is not None else None


def _check_run(event: _CheckRunEvent, *, delivery_id: str, now: dt.datetime) -> Reading:
    repo = event.repository.full_name
    if event.action != "rerequested":
        return ignored(
            f"check_run action {event.action!r} is not handled", action=event.action, repo=repo
        )
    if event.check_run.name != CHECK_NAME:
        return ignored(f"check run {event.check_run.name!r} is not Gatehouse's", repo=repo)
    requested = CheckRerequested(
        repo=repo,
        commit=event.check_run.head_sha,
        check_run_id=event.check_run.id,
        pull_numbers=sorted({p.number for p in event.check_run.pull_requests}),
        delivery_id=delivery_id,
        requested_at=now,
    )
    return Reading(outcome="recorded", action=event.action, repo=repo, events=(requested,))
