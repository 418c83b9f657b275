"""Registers the deliveries part on the webhook-fanout's runtime: the intake projection
(every event matched and queued before its message is acked) and the sender (started with
the service, stopped before the bus and the database close)."""

from __future__ import annotations

from services.webhook_fanout.deliveries.operations import SENDER_KEY
from services.webhook_fanout.deliveries.projection import (
    SUBSCRIPTIONS_WAIT_SECONDS,
    Intake,
    WaitForSubscriptions,
)
from services.webhook_fanout.deliveries.sender import Sender
from shared.logging import get_logger
from shared.service import VERSION, Runtime

# The projection of the subscriptions part that writes the table the intake matches against.
SUBSCRIPTIONS_PROJECTION = "subscriptions"

log = get_logger(__name__)


async def setup(runtime: Runtime) -> None:
    runtime.add_projection(Intake(_subscriptions_waiter(runtime)))
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


def _subscriptions_waiter(runtime: Runtime) -> WaitForSubscriptions | None:
    runner = runtime.runners.get(SUBSCRIPTIONS_PROJECTION)
    if runner is None:
        log.warning("webhook_intake_unordered", missing_projection=SUBSCRIPTIONS_PROJECTION)
        return None

    async def wait(sequence: int) -> None:
        await runner.wait_for(sequence, timeout=SUBSCRIPTIONS_WAIT_SECONDS)

    return wait
