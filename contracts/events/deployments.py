"""Events of release candidates, environments and deployments (the release-decision service,
compatible with the Aviator releases API).

A **release** (``v1.4.0``) of a project is cut as numbered **release candidates**
(``v1.4.0-rc1``, ``v1.4.0-rc2`` …), each pinning a commit of one of the project's repos. An
**environment** (``staging``, ``production`` …) of the project may be ``protected``: a
candidate whose commit is ``NO_SHIP`` is deployed there only when an APPROVER overrides the
gate with a reason. A **deployment** puts a candidate into an environment; its status follows
GitHub's deployment statuses, and a ``success`` marks the environment's older successful
deployments ``inactive``.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from contracts.envelope import EventPayload, register
from contracts.events.releases import BLOCKERS_MAX, Blocker, Decision, PromotionOverride
from contracts.events.scans import CommitSha, Repo

DeploymentStatus = Literal[
    "pending",
    "queued",
    "in_progress",
    "success",
    "failure",
    "error",
    "canceling",
    "canceled",
    "inactive",
    "unknown",
]
DEPLOYMENT_STATUSES: tuple[DeploymentStatus, ...] = (
    "pending",
    "queued",
    "in_progress",
    "success",
    "failure",
    "error",
    "canceling",
    "canceled",
    "inactive",
    "unknown",
)
# Why a deployment's status changed: reported by the caller (PATCH), or superseded by a newer
# successful deployment of the same environment, or moved by the outcome of triggering the
# environment's workflow (queued: the workflow accepted it; error: it could not be called).
StatusCause = Literal["reported", "superseded", "workflow"]

ReleaseVersion = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,119}$",
        description="A release version, e.g. v1.4.0",
    ),
]
CandidateVersion = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,119}-rc[0-9]{1,6}$",
        description="A release candidate version: the release version and -rcN, e.g. v1.4.0-rc2",
    ),
]
EnvironmentName = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$",
        description="Environment name: letters, digits, - and _ (case sensitive)",
    ),
]
WorkflowUrl = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^https?://[^\s]{1,2040}$",
        description="The deployment workflow of the environment (an http(s) URL)",
    ),
]


@register
class ReleaseCreated(EventPayload, frozen=True, kw_only=True):
    """A release of a project was created by its first candidate (``release_candidate_id``)."""

    event_type = "release.created"
    release_id: str
    project_id: str
    version: ReleaseVersion
    release_candidate_id: str


@register
class ReleaseCandidateCreated(EventPayload, frozen=True, kw_only=True):
    """A release candidate was cut at ``commit`` of ``repo``; it belongs to the release
    ``release_version``. ``trigger_build_workflow``: the caller asked for the build
    workflow to start (otherwise the candidate is ready as it is)."""

    event_type = "release.candidate-created"
    release_candidate_id: str
    release_id: str
    project_id: str
    version: CandidateVersion
    release_version: ReleaseVersion
    rc_number: Annotated[int, msgspec.Meta(ge=0)]
    repo: Repo
    commit: CommitSha
    trigger_build_workflow: bool = False


@register
class EnvironmentUpdated(EventPayload, frozen=True, kw_only=True):
    """An environment of a project was created (``created``) or changed. ``protected``:
    deploying a NO_SHIP candidate there needs an APPROVER's override. ``version`` counts
    the changes from 1."""

    event_type = "environment.updated"
    environment_id: str
    project_id: str
    name: EnvironmentName
    protected: bool
    workflow_url: WorkflowUrl | None = None
    version: Annotated[int, msgspec.Meta(ge=1)]
    created: bool = False


class DeploymentGate(msgspec.Struct, frozen=True, kw_only=True):
    """The decision of the candidate's commit when it was deployed to a protected
    environment, and the override when an APPROVER deployed it despite NO_SHIP."""

    decision: Decision
    blockers: Annotated[list[Blocker], msgspec.Meta(max_length=BLOCKERS_MAX)] = []
    revision: int = 0
    policy_version: int = 0
    override: PromotionOverride | None = None


@register
class DeploymentRequested(EventPayload, frozen=True, kw_only=True):
    """A deployment of a release candidate to an environment was requested (status
    ``pending``): the environment's workflow (``workflow_url``) should run it. ``gate`` is
    set for a protected environment."""

    event_type = "deployment.requested"
    deployment_id: str
    project_id: str
    environment_id: str
    environment: EnvironmentName
    workflow_url: WorkflowUrl | None = None
    protected: bool = False
    release_candidate_id: str
    release_candidate_version: CandidateVersion
    release_version: ReleaseVersion
    repo: Repo
    commit: CommitSha
    gate: DeploymentGate | None = None


@register
class DeploymentStatusChanged(EventPayload, frozen=True, kw_only=True):
    """The status of a deployment changed. ``previous_status`` null: the deployment was
    created by this status report (a CD pipeline reporting a deployment it ran itself).
    ``cause`` ``superseded``: a newer deployment of the environment succeeded
    (``superseded_by``), so this one became ``inactive``."""

    event_type = "deployment.status-changed"
    deployment_id: str
    project_id: str
    environment_id: str
    environment: EnvironmentName
    release_candidate_id: str
    release_candidate_version: CandidateVersion
    repo: Repo
    commit: CommitSha
    status: DeploymentStatus
    previous_status: DeploymentStatus | None = None
    cause: StatusCause = "reported"
    superseded_by: str | None = None
