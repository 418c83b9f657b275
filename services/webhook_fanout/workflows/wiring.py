"""Registers the workflow triggers on the webhook-fanout's runtime: the ``workflows``
projection (configuration, and a delivery queued per deployment / build request), the
outcome publisher and ``svc.webhook-fanout.workflow_*``."""

from __future__ import annotations

from contracts.rpc import workflows as rpc
from services.webhook_fanout.workflows.handlers import WorkflowHandlers
from services.webhook_fanout.workflows.outcomes import OutcomePublisher
from services.webhook_fanout.workflows.projection import WorkflowsProjection
from shared.service import Runtime


async def setup(runtime: Runtime) -> None:
    runner = runtime.add_projection(WorkflowsProjection())
    handlers = WorkflowHandlers(
        pool=runtime.pool, bus=runtime.bus, runner=runner, settings=runtime.settings
    )
    runtime.rpc.add(rpc.WORKFLOW_CONFIGURE, rpc.WorkflowConfigureRequest, handlers.configure)
    runtime.rpc.add(rpc.WORKFLOW_GET, rpc.WorkflowGetRequest, handlers.get)
    runtime.rpc.add(rpc.WORKFLOW_SECRET, rpc.WorkflowSecretRequest, handlers.secret)
    publisher = OutcomePublisher(
        pool=runtime.pool, bus=runtime.bus, database_url=runtime.settings.database_url
    )
    runtime.on_started.append(publisher.start)
    runtime.on_stopping.append(publisher.stop)
