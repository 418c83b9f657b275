"""Reading a decision at the gateway: the one function every route that shows a decision
(the decision endpoint, the badge, attestations) goes through.

Today it asks the release-decision service; the hot in-memory read model kept current by
``release.decided`` plugs in here.
"""

from __future__ import annotations

from contracts.rpc import release_decision as rpc
from services.gateway.routes._upstream import ask
from services.gateway.routing import RequestContext


async def read_decision(ctx: RequestContext, request: rpc.DecisionRequest) -> rpc.DecisionView:
    """The decision of ``request.repo`` at ``request.commit`` (HEAD resolved), now or as of
    ``request.as_of``."""
    return await ask(ctx, rpc.SERVICE, rpc.DECISION_GET, request, rpc.DecisionView)
