"""``svc.release-decision.rc_*``: release candidates, environments and deployments, the
Aviator-releases-compatible part of the release gate (``/api/releases/{project}/…``).

The gateway resolves the project of the path (id or slug) and passes it as a
:class:`ProjectRef`: the gateway owns projects, and a repository is accepted for a
candidate only when the project lists it. The bodies (``CandidateBody``,
``EnvironmentBody``, ``DeploymentBody``, ``DeploymentStatusBody``) are the HTTP bodies as
they are; version strings and commit ids are checked by the service, so that their errors
are the ones Aviator clients know (400 ``Invalid release candidate version``, 400
``Invalid commit hash``), never a schema error.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from contracts.events.deployments import (
    DeploymentGate,
    DeploymentStatus,
    WorkflowUrl,
)
from contracts.rpc.scanner_scans import DEFAULT_LIMIT, Cursor, Limit

SERVICE = "release-decision"
CANDIDATE_CREATE = "rc_candidate_create"
RELEASE_LIST = "rc_release_list"
RELEASE_GET = "rc_release_get"
ENVIRONMENT_PUT = "rc_environment_put"
ENVIRONMENT_LIST = "rc_environment_list"
DEPLOYMENT_CREATE = "rc_deployment_create"
DEPLOYMENT_STATUS = "rc_deployment_status"
DEPLOYMENT_LIST = "rc_deployment_list"

# Path segments and body strings are bounded before the service parses them.
NAME_MAX = 128
OVERRIDE_REASON_MAX = 1000

PathText = Annotated[str, msgspec.Meta(min_length=1, max_length=NAME_MAX)]


class ProjectRef(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The project of the path as the gateway knows it."""

    id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    slug: str
    repos: list[str] = []
    archived: bool = False


# ---- bodies (HTTP) --------------------------------------------------------------------------
class CandidateBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``POST /api/releases/{project}/releases/{release_candidate_version}``."""

    repo: Annotated[
        str,
        msgspec.Meta(max_length=256, description="owner/name, one of the project's repos"),
    ]
    commit: Annotated[
        str, msgspec.Meta(max_length=128, description="The full commit SHA (40 or 64 hex)")
    ]
    trigger_build_workflow: bool = False


class EnvironmentBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``PUT /api/releases/{project}/environments/{env}``: the whole configuration."""

    protected: Annotated[
        bool,
        msgspec.Meta(
            description="A NO_SHIP candidate is deployed here only by an APPROVER's override"
        ),
    ] = False
    workflow_url: WorkflowUrl | None = None


class OverrideBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=OVERRIDE_REASON_MAX)]


class DeploymentBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``POST /api/releases/{project}/environments/{env}/deployments``. ``override``: an
    APPROVER deploys a NO_SHIP candidate to a protected environment anyway, and says why."""

    release_candidate_version: PathText
    override: OverrideBody | None = None


class DeploymentStatusBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``PATCH /api/releases/{project}/environments/{env}/deployments``."""

    release_candidate_version: PathText
    status: DeploymentStatus


class ReleaseListQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    cursor: Cursor | None = None
    limit: Limit = DEFAULT_LIMIT


class DeploymentListQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    status: list[DeploymentStatus] | None = None
    release_candidate_version: PathText | None = None
    cursor: Cursor | None = None
    limit: Limit = DEFAULT_LIMIT


# ---- requests (RPC) -------------------------------------------------------------------------
class CandidateCreateRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    project: ProjectRef
    version: PathText
    body: CandidateBody


class ReleaseListRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    project_id: str
    query: ReleaseListQuery = ReleaseListQuery()


class ReleaseGetRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``version``: a release (``v1.4.0``) or one of its candidates (``v1.4.0-rc2``)."""

    project_id: str
    version: PathText


class EnvironmentPutRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    project: ProjectRef
    name: PathText
    body: EnvironmentBody


class EnvironmentListRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    project_id: str


class DeploymentCreateRequest(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True
):
    project: ProjectRef
    environment: PathText
    body: DeploymentBody


class DeploymentStatusRequest(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True
):
    project: ProjectRef
    environment: PathText
    body: DeploymentStatusBody


class DeploymentListRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    project_id: str
    environment: PathText
    query: DeploymentListQuery = DeploymentListQuery()


# ---- views ----------------------------------------------------------------------------------
class CandidateView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    project_id: str
    version: Annotated[str, msgspec.Meta(description="The candidate version, e.g. v1.4.0-rc2")]
    release_id: str
    release_version: Annotated[str, msgspec.Meta(description="Its release, e.g. v1.4.0")]
    rc_number: int
    repo: str
    commit: str
    trigger_build_workflow: bool
    build_status: Annotated[
        str,
        msgspec.Meta(
            description="not_requested (ready as it is), requested (the build workflow is "
            "being called), triggered (it answered 2xx), failed (it could not be called)"
        ),
    ] = "not_requested"
    created_at: dt.datetime
    created_by: str


class ReleaseView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    project_id: str
    version: str
    created_at: dt.datetime
    created_by: str
    candidate_count: int
    latest_candidate: CandidateView | None = None
    # Every candidate, oldest first: in the detail view only.
    candidates: list[CandidateView] | None = None


class ReleasePage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[ReleaseView]
    next_cursor: str | None = None


class EnvironmentView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    project_id: str
    name: str
    protected: bool
    workflow_url: str | None = None
    version: int
    created_at: dt.datetime
    created_by: str
    updated_at: dt.datetime
    updated_by: str
    # The newest successful deployment: what runs there now.
    active_deployment_id: str | None = None
    active_release_candidate_version: str | None = None


class EnvironmentPutReply(msgspec.Struct, frozen=True, kw_only=True):
    environment: EnvironmentView
    created: bool


class EnvironmentList(msgspec.Struct, frozen=True, kw_only=True):
    items: list[EnvironmentView]


class DeploymentView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    project_id: str
    environment_id: str
    environment: str
    release_candidate_id: str
    release_candidate_version: str
    release_version: str
    repo: str
    commit: str
    status: DeploymentStatus
    workflow_url: str | None = None
    protected: bool
    gate: DeploymentGate | None = None
    requested: Annotated[
        bool,
        msgspec.Meta(
            description="Requested through POST (the workflow was asked to run it); "
            "false: first reported by a status PATCH"
        ),
    ]
    created_at: dt.datetime
    created_by: str
    updated_at: dt.datetime
    updated_by: str


class DeploymentPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[DeploymentView]
    next_cursor: str | None = None


class CandidateCreateReply(msgspec.Struct, frozen=True, kw_only=True):
    """``created`` false: the same candidate (same repo and commit) existed already."""

    candidate: CandidateView
    release_created: bool
    created: bool
