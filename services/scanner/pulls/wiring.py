"""Registers who-pulled on the scanner's runtime: the ``registry_pulls`` projection and
``svc.scanner.who_pulled``."""

from __future__ import annotations

from contracts.rpc import pulls as rpc
from services.scanner.pulls.handlers import PullHandlers
from services.scanner.pulls.projection import PullsProjection
from shared.service import Runtime

# An incident asks a few lookups at once; each holds a pooled connection for one query.
READ_CONCURRENCY = 4


async def setup(runtime: Runtime) -> None:
    runtime.add_projection(PullsProjection())
    handlers = PullHandlers(pool=runtime.pool)
    runtime.rpc.add(
        rpc.WHO_PULLED, rpc.WhoPulledRequest, handlers.who_pulled, concurrency=READ_CONCURRENCY
    )
