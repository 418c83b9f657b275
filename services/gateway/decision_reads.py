"""Reading a decision at the gateway: the one function every route that shows a decision
(the decision endpoint, the badge) goes through.

Current decisions of a named commit are answered from the gateway's hot copy
(``services.gateway.decision_cache``), kept current by ``release.decided`` and
``release.promoted``; a miss, HEAD and ``as_of`` ask the release-decision service.
"""

from __future__ import annotations

from contracts.rpc import release_decision as rpc
from services.gateway.decision_cache import DecisionFeed
from services.gateway.routes._upstream import ask
from services.gateway.routing import RequestContext

FEED_KEY = "decision_feed"


def feed_of(ctx: RequestContext) -> DecisionFeed | None:
    feed = ctx.runtime.state.get(FEED_KEY)
    return feed if isinstance(feed, DecisionFeed) else None


async def read_decision(ctx: RequestContext, request: rpc.DecisionRequest) -> rpc.DecisionView:
    """The decision of ``request.repo`` at ``request.commit`` (HEAD resolved), now or as of
    ``request.as_of``."""

    async def from_owner() -> rpc.DecisionView:
        return await ask(ctx, rpc.SERVICE, rpc.DECISION_GET, request, rpc.DecisionView)

    feed = feed_of(ctx)
    if feed is None:
        return await from_owner()
    feed.check_connection()
    return await feed.cache.read_through(request, from_owner)


def decisions_changed(ctx: RequestContext, *, repo: str | None = None) -> None:
    """A command through this gateway changed decisions at the owner (a promotion of
    ``repo``, a policy: every repo): drop the hot copies it affects, so the caller's next read
    sees the change without waiting for the events (read-your-writes on this replica)."""
    feed = feed_of(ctx)
    if feed is not None:
        feed.cache.invalidate(repo)
