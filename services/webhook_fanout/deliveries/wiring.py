"""Registers the deliveries part on the webhook-fanout's runtime: the intake projection
(every event matched and queued before its message is acked) and the sender (started with
the service, stopped before the bus and the database close)."""

from __future__ import annotations

from services.webhook_fanout.deliveries.operations import SENDER_KEY
from services.webhook_fanout.deliveries.projection import (
    SUBSCRIPTIONS_WAIT_SECONDS,
    Intake,
    WaitForProjection,
)
from services.webhook_fanout.deliveries.sender import Sender
from shared.logging import get_logger
from shared.service import VERSION, Runtime

# The projections of other parts that write the tables the intake matches against.
SUBSCRIPTIONS_PROJECTION = "subscriptions"
PROJECTS_PROJECTION = "projects"

log = get_logger(__name__)


async def setup(runtime: Runtime) -> None:
    runtime.add_projection(
        Intake(
            wait_for_subscriptions=_waiter(runtime, SUBSCRIPTIONS_PROJECTION),
            wait_for_projects=_waiter(runtime, PROJECTS_PROJECTION),
        )
    )
    sender = Sender(
        pool=runtime.pool,
        bus=runtime.bus,
        settings=runtime.settings,
        owner=f"{runtime.instance}",
        version=VERSION,
    )
    runtime.state[SENDER_KEY] = sender
    runtime.on_started.append(sender.start)
    runtime.on_stopping.append(sender.stop)


def _waiter(runtime: Runtime, projection: str) -> WaitForProjection | None:
    runner = runtime.runners.get(projection)
    if runner is None:
        log.warning("webhook_intake_unordered", missing_projection=projection)
        return None

    async def wait(sequence: int) -> None:
        await runner.wait_for(sequence, timeout=SUBSCRIPTIONS_WAIT_SECONDS)

    return wait
