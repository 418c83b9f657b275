"""``svc.webhook-fanout.workflow_*``: how the fan-out calls a project's workflows (the
Aviator flows): an environment's deployment workflow (its ``workflow_url`` is configured on
the environment, in release-decision) and the project's build workflow (configured here,
URL included: nothing else in Gatehouse calls it).

The fan-out owns the credentials: a Standard Webhooks secret (``whsec_``) the receiver
verifies, or the GitHub token a dispatch format sends as ``Authorization: Bearer``. Both
are write-only: a secret is in exactly one answer (``WorkflowSecretReply``), a token in none.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from contracts.events.webhooks import (
    DispatchEventType,
    GitRef,
    ReceiverUrl,
    WebhookId,
    WorkflowFormat,
    WorkflowKind,
)

SERVICE = "webhook-fanout"
WORKFLOW_CONFIGURE = "workflow_configure"
WORKFLOW_GET = "workflow_get"
WORKFLOW_SECRET = "workflow_secret"

# A GitHub token (classic ``ghp_…``, fine-grained ``github_pat_…``, an app's ``ghs_…``).
GithubToken = Annotated[str, msgspec.Meta(pattern=r"^[!-~]{16,256}$")]
GRACE_MAX_SECONDS = 7 * 24 * 3600
GRACE_DEFAULT_SECONDS = 24 * 3600
NAME_MAX = 128


class WorkflowSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``PUT /api/releases/{project}/environments/{env}/workflow``: how the environment's
    deployment workflow is called."""

    format: WorkflowFormat = "standard"
    # workflow_dispatch: the branch or tag the workflow runs on (required for that format).
    ref: GitRef | None = None
    # repository_dispatch: the ``event_type`` (default: the Gatehouse event type).
    dispatch_event_type: DispatchEventType | None = None
    # Required by the GitHub formats; never shown again.
    github_token: GithubToken | None = None


class BuildWorkflowSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``PUT /api/releases/{project}/build-workflow``: the project's build workflow, called
    for each release candidate cut with ``trigger_build_workflow: true``."""

    url: ReceiverUrl
    format: WorkflowFormat = "standard"
    ref: GitRef | None = None
    dispatch_event_type: DispatchEventType | None = None
    github_token: GithubToken | None = None


class SecretBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``POST …/workflow-secret``: a new secret; the previous one keeps signing for
    ``grace_seconds`` (0 when it was never shown: nobody can hold it)."""

    grace_seconds: Annotated[int, msgspec.Meta(ge=0, le=GRACE_MAX_SECONDS)] = GRACE_DEFAULT_SECONDS


class WorkflowRef(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Which workflow: the build workflow of a project, or the deployment workflow of one of
    its environments (by name)."""

    project_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    kind: WorkflowKind
    environment: Annotated[str, msgspec.Meta(min_length=1, max_length=NAME_MAX)] | None = None


class WorkflowConfigureRequest(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True
):
    workflow: WorkflowRef
    settings: WorkflowSettings
    # The build workflow's URL (a deployment workflow's is its environment's workflow_url).
    url: ReceiverUrl | None = None


class WorkflowGetRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    workflow: WorkflowRef


class WorkflowSecretRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    workflow: WorkflowRef
    body: SecretBody = SecretBody()


class WorkflowView(msgspec.Struct, frozen=True, kw_only=True):
    id: Annotated[
        WebhookId,
        msgspec.Meta(description="Its delivery log: /api/admin/webhooks/{id}/deliveries"),
    ]
    kind: WorkflowKind
    project_id: str
    environment: str | None = None
    url: Annotated[
        str | None,
        msgspec.Meta(
            description="Where it is called (a deployment: the environment's workflow_url)"
        ),
    ] = None
    format: WorkflowFormat
    ref: str | None = None
    dispatch_event_type: str | None = None
    has_github_token: bool = False
    secret_version: int
    previous_valid_until: dt.datetime | None = None
    updated_at: dt.datetime


class WorkflowSecretReply(msgspec.Struct, frozen=True, kw_only=True):
    workflow: WorkflowView
    secret: Annotated[str, msgspec.Meta(description="whsec_…, shown this once")]
