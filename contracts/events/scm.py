"""Events of the release gate's GitHub and GitLab integration (the ``scm`` part of the
release-decision service).

An authenticated webhook delivery is recorded once: a push becomes ``commit.pushed`` events
(see :mod:`contracts.events.commits`), a pull / merge request becomes
``scm.pull-request-updated``, a re-run request of Gatehouse's check becomes
``scm.check-rerequested``, and every delivery ends with ``scm.delivery-received`` (what
de-duplicates ``X-GitHub-Delivery`` / ``X-Gitlab-Event-UUID``). Posting a decision back to
GitHub (a check run and one pull-request comment, updated in place) is recorded by
``scm.decision-posted``, which carries the comment id so the comment is never duplicated.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from contracts.envelope import EventPayload, register
from contracts.events.releases import Decision
from contracts.events.scans import CommitSha, Repo

Provider = Literal["github", "gitlab"]
DeliveryId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
PullNumber = Annotated[int, msgspec.Meta(ge=1)]
BranchName = Annotated[str, msgspec.Meta(max_length=255)]
PullState = Literal["open", "closed", "merged"]


@register
class DeliveryReceived(EventPayload, frozen=True, kw_only=True):
    """An authenticated webhook delivery was accepted (its signature or token checked) and
    handled: ``outcome`` ``recorded`` (events were published for it, listed by count),
    ``pong`` (GitHub's ``ping``) or ``ignored`` (an event or action Gatehouse does not act
    on, with the reason). A delivery id is handled once; a redelivery is answered as a
    duplicate."""

    event_type = "scm.delivery-received"
    provider: Provider
    delivery_id: DeliveryId
    event: Annotated[str, msgspec.Meta(max_length=100)]
    action: Annotated[str, msgspec.Meta(max_length=100)] | None = None
    repo: Repo | None = None
    outcome: Literal["recorded", "pong", "ignored"]
    reason: str | None = None
    published: Annotated[int, msgspec.Meta(ge=0)] = 0
    received_at: dt.datetime
    body_digest: (
        Annotated[
            str,
            msgspec.Meta(
                pattern=r"^[0-9a-f]{64}$",
                description="SHA-256 of the body as received: the same body under another "
                "delivery id is a replay, answered as a duplicate",
            ),
        ]
        | None
    ) = None


@register
class PullRequestUpdated(EventPayload, frozen=True, kw_only=True):
    """A GitHub pull request (or GitLab merge request, ``number`` = its iid) was opened,
    pushed to, reopened, edited or closed: its head commit and state now. The release gate
    posts the head commit's decision to an open GitHub pull request."""

    event_type = "scm.pull-request-updated"
    provider: Provider
    repo: Repo
    number: PullNumber
    action: Annotated[str, msgspec.Meta(max_length=100)]
    state: PullState
    head_sha: CommitSha
    head_branch: BranchName = ""
    base_branch: BranchName = ""
    title: Annotated[str, msgspec.Meta(max_length=1024)] = ""
    url: str | None = None
    delivery_id: DeliveryId
    updated_at: dt.datetime
    changed_at: Annotated[
        dt.datetime | None,
        msgspec.Meta(
            description="When the provider says the pull request last changed (GitHub's "
            "pull_request.updated_at): a change delivered after a newer one does not move the "
            "recorded head back"
        ),
    ] = None


@register
class CheckRerequested(EventPayload, frozen=True, kw_only=True):
    """Someone asked GitHub to re-run Gatehouse's check run on ``commit``: the decision is
    posted again (a new check run, and the pull requests' comment brought up to date)."""

    event_type = "scm.check-rerequested"
    provider: Literal["github"] = "github"
    repo: Repo
    commit: CommitSha
    check_run_id: int | None = None
    pull_numbers: list[PullNumber] = []
    delivery_id: DeliveryId
    requested_at: dt.datetime


@register
class DecisionPosted(EventPayload, frozen=True, kw_only=True):
    """The decision of ``commit`` was posted to GitHub for pull request ``number``: a check
    run (``check_run_id``) and the pull request's one Gatehouse comment (``comment_id``,
    created once, then edited). ``outcome`` ``skipped`` says why nothing was posted
    (``no_token``, ``superseded``: the pull request moved on or closed, ``gave_up``: GitHub
    kept failing). ``job_id`` is the posting job this finishes."""

    event_type = "scm.decision-posted"
    repo: Repo
    number: PullNumber | None = None
    commit: CommitSha
    job_id: str
    outcome: Literal["posted", "skipped"]
    reason: str | None = None
    decision: Decision | None = None
    revision: Annotated[int, msgspec.Meta(ge=0)] = 0
    check_run_id: int | None = None
    comment_id: int | None = None
    comment_created: bool = False
    body_digest: str | None = None
    posted_at: dt.datetime
