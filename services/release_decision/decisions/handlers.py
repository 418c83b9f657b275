"""``svc.release-decision.*`` of the decisions part: decisions, their history, the decision
policy, promotions and health."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from contracts.rpc import release_decision as rpc
from services.release_decision.decisions import queries
from shared.bus import Bus
from shared.projection import ProjectionRunner
from shared.rpc import CallContext
from shared.settings import Settings

Endpoint = tuple[str, type, Callable[[Any, CallContext], Awaitable[Any]]]


@dataclass
class DecisionHandlers:
    pool: asyncpg.Pool
    runner: ProjectionRunner
    settings: Settings
    bus: Bus

    def endpoints(self) -> list[Endpoint]:
        return [
            (rpc.DECISION_GET, rpc.DecisionRequest, self.decision_get),
        ]

    async def decision_get(
        self, request: rpc.DecisionRequest, _ctx: CallContext
    ) -> rpc.DecisionView:
        if request.as_of is not None:
            return await queries.decision_as_of(
                self.pool, request.repo, request.commit, request.as_of
            )
        return await queries.current_decision(self.pool, request.repo, request.commit)
