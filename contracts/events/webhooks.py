"""Events owned by webhook-fanout: subscriptions (what receivers asked for), and what came of
delivering to them when it matters to others (a delivery given up, a subscription disabled,
a workflow trigger's outcome).

A subscription's secret never travels on the bus (the audit log and every subscriber would
read it): the fan-out keeps it in its own store and events carry only its version.
Individual delivery attempts are the fan-out's operational record, readable through the
deliveries API, not events.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from contracts.envelope import EventPayload, register

WebhookFormat = Literal["standard", "orbitalreg", "slack", "cloudevents"]
WEBHOOK_FORMATS: tuple[WebhookFormat, ...] = ("standard", "orbitalreg", "slack", "cloudevents")
WebhookId = Annotated[str, msgspec.Meta(pattern=r"^wh_[0-9a-f]{32}$")]
DeliveryId = Annotated[
    str, msgspec.Meta(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
]
ReceiverUrl = Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]
# An event type (`release.decided`) or every event of a domain (`artifact.*`).
EventPattern = Annotated[
    str, msgspec.Meta(pattern=r"^[a-z][a-z0-9-]{0,62}\.(\*|[a-z][a-z0-9-]{0,62})$")
]
Description = Annotated[str, msgspec.Meta(max_length=1000)]
EVENTS_MAX = 100
WebhookEvents = Annotated[list[EventPattern], msgspec.Meta(min_length=1, max_length=EVENTS_MAX)]
DisabledReason = Literal["gone", "failing", "manual"]


@register
class WebhookCreated(EventPayload, frozen=True, kw_only=True):
    """A webhook subscription was created (its secret, version 1, is kept by the fan-out)."""

    event_type = "webhook.created"
    id: WebhookId
    url: ReceiverUrl
    events: WebhookEvents
    project_id: str | None = None
    description: Description = ""
    enabled: bool = True
    format: WebhookFormat = "standard"
    secret_version: int = 1


@register
class WebhookUpdated(EventPayload, frozen=True, kw_only=True):
    """Fields of a subscription changed; only the changed fields are present."""

    event_type = "webhook.updated"
    id: WebhookId
    url: ReceiverUrl | msgspec.UnsetType = msgspec.UNSET
    events: WebhookEvents | msgspec.UnsetType = msgspec.UNSET
    project_id: str | msgspec.UnsetType | None = msgspec.UNSET
    description: Description | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    format: WebhookFormat | msgspec.UnsetType = msgspec.UNSET


@register
class WebhookDeleted(EventPayload, frozen=True, kw_only=True):
    """A subscription was deleted: nothing more is delivered to it."""

    event_type = "webhook.deleted"
    id: WebhookId


@register
class WebhookSecretRotated(EventPayload, frozen=True, kw_only=True):
    """A subscription's secret was replaced by version ``secret_version``; deliveries are
    signed with both the new and the previous secret until ``previous_valid_until``."""

    event_type = "webhook.secret-rotated"
    id: WebhookId
    secret_version: int
    previous_valid_until: dt.datetime


@register
class WebhookDisabled(EventPayload, frozen=True, kw_only=True):
    """The fan-out disabled a subscription: its receiver answered ``410 Gone``
    (``gone``), or failed every delivery for five days (``failing``)."""

    event_type = "webhook.disabled"
    id: WebhookId
    reason: DisabledReason
    detail: Annotated[str, msgspec.Meta(max_length=1000)] = ""


@register
class WebhookDeliveryFailed(EventPayload, frozen=True, kw_only=True):
    """A delivery was given up after its last attempt and went to the dead-letter list
    (redeliverable)."""

    event_type = "webhook.delivery-failed"
    id: WebhookId
    delivery_id: DeliveryId
    event_id: str
    event_type_delivered: str
    attempts: int
    last_status: int | None = None
    last_error: Annotated[str, msgspec.Meta(max_length=1000)] = ""


@register
class WebhookRedeliveryRequested(EventPayload, frozen=True, kw_only=True):
    """Someone asked for a delivery to be sent again (a new attempt series, same delivery
    id), or for every event of a time range to be sent again (``since``/``until``)."""

    event_type = "webhook.redelivery-requested"
    id: WebhookId
    delivery_id: DeliveryId | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None


WorkflowKind = Literal["deployment", "build"]
WorkflowOutcome = Literal["delivered", "failed"]


@register
class WebhookWorkflowTriggered(EventPayload, frozen=True, kw_only=True):
    """A workflow trigger (an environment's deployment workflow for ``deployment.requested``,
    a project's build workflow for a candidate with ``trigger_build_workflow``) was
    delivered (the receiver answered 2xx) or finally failed. Release-decision moves the
    deployment to ``queued`` or ``error`` on it."""

    event_type = "webhook.workflow-triggered"
    kind: WorkflowKind
    outcome: WorkflowOutcome
    # The event that asked for the workflow (deployment.requested / release.candidate-created).
    trigger_event_id: str
    project_id: str
    deployment_id: str | None = None
    candidate_id: str | None = None
    delivery_id: DeliveryId
    status: int | None = None
    error: Annotated[str, msgspec.Meta(max_length=1000)] = ""


# How a workflow is called: the Gatehouse envelope signed as Standard Webhooks, or a GitHub
# Actions dispatch (repository_dispatch / workflow_dispatch) authenticated with a token.
WorkflowFormat = Literal["standard", "github_repository_dispatch", "github_workflow_dispatch"]
WORKFLOW_FORMATS: tuple[WorkflowFormat, ...] = (
    "standard",
    "github_repository_dispatch",
    "github_workflow_dispatch",
)
# A git branch or tag (workflow_dispatch's ``ref``).
GitRef = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}$")]
# repository_dispatch's ``event_type`` (GitHub allows up to 100 characters).
DispatchEventType = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")]


@register
class WebhookWorkflowConfigured(EventPayload, frozen=True, kw_only=True):
    """How a workflow trigger calls its workflow changed, or its credential (the Standard
    Webhooks secret, or the GitHub token of a dispatch format; kept by the fan-out, never on
    the bus) was replaced by version ``secret_version``. ``id`` is the trigger's delivery
    queue (its deliveries are listed under ``/api/admin/webhooks/{id}/deliveries``). A build
    trigger carries its ``url``; a deployment trigger calls its environment's
    ``workflow_url`` (``environment.updated``)."""

    event_type = "webhook.workflow-configured"
    id: WebhookId
    kind: WorkflowKind
    project_id: str
    environment_id: str | None = None
    url: ReceiverUrl | None = None
    format: WorkflowFormat = "standard"
    ref: GitRef | None = None
    dispatch_event_type: DispatchEventType | None = None
    secret_version: int = 1
    previous_valid_until: dt.datetime | None = None
