"""Wiring of the gateway: the identity read model, the dispatcher and every route module,
the bootstrap admin key and the idempotency-key janitor."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from pathlib import Path

from services.gateway.adapters.idempotency_store import ProcessLiveness, purge_expired
from services.gateway.backups import BackupsProjection
from services.gateway.bootstrap import ensure_bootstrap_admin
from services.gateway.commits_cache import COMMITS_FEED_KEY, CommitsCache, CommitsFeed
from services.gateway.decision_cache import DecisionCache, DecisionFeed
from services.gateway.decision_reads import FEED_KEY
from services.gateway.deps import DEPS_KEY, GatewayDeps
from services.gateway.dispatch import install_routes
from services.gateway.keycache import KeyCache
from services.gateway.packages.http.install import install_package_routes
from services.gateway.projection import IdentityProjection
from services.gateway.ratelimiter import FailedAuthThrottle, RateLimiter
from services.gateway.routes import collect_routes
from services.gateway.routing import Route
from services.gateway.writes import CommandWriter
from shared.artifact_blobs import open_artifact_blobs
from shared.logging import get_logger
from shared.service import Runtime, ServiceDefinition

log = get_logger(__name__)

# Expired Idempotency-Keys are ignored at once; this only bounds the table's size.
PURGE_EVERY_SECONDS = 3600.0


@functools.cache
def _routes() -> tuple[Route, ...]:
    return tuple(collect_routes())


def collected_routes() -> list[Route]:
    """Every route of every module in ``services.gateway.routes``."""
    return list(_routes())


async def setup(runtime: Runtime) -> None:
    settings = runtime.settings
    runner = runtime.add_projection(IdentityProjection())
    runtime.add_projection(BackupsProjection())
    deps = GatewayDeps(
        runtime=runtime,
        runner=runner,
        writer=CommandWriter(bus=runtime.bus, runner=runner, settings=settings),
        routes=collected_routes(),
        token_limiter=RateLimiter(
            rate=settings.rate_limit_per_token, burst=settings.rate_limit_burst
        ),
        ip_limiter=RateLimiter(rate=settings.rate_limit_per_ip, burst=settings.rate_limit_burst),
        auth_throttle=FailedAuthThrottle(
            rate=settings.auth_failures_per_ip, burst=settings.auth_failure_burst
        ),
        key_cache=KeyCache(runner),
        liveness=ProcessLiveness(settings.database_url),
        artifact_blobs=open_artifact_blobs(settings),
    )
    runtime.state[DEPS_KEY] = deps
    install_routes(runtime.app, deps.routes, deps)
    install_package_routes(runtime.app, deps)
    feed = DecisionFeed(runtime.bus, DecisionCache(size=settings.decision_cache_size))
    runtime.state[FEED_KEY] = feed
    commits_feed = CommitsFeed(runtime.bus, CommitsCache(size=settings.commits_cache_size))
    runtime.state[COMMITS_FEED_KEY] = commits_feed
    janitor: list[asyncio.Task[None]] = []

    async def started() -> None:
        await deps.writer.open()
        await deps.liveness.ensure()
        await ensure_bootstrap_admin(deps)
        await feed.start()
        await commits_feed.start()
        janitor.append(asyncio.create_task(_purge_idempotency_keys(deps), name="idempotency"))

    async def stopping() -> None:
        await feed.stop()
        await commits_feed.stop()
        for task in janitor:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await deps.writer.close()
        await deps.liveness.close()
        await deps.artifact_blobs.close()

    runtime.on_started.append(started)
    runtime.on_stopping.append(stopping)


async def _purge_idempotency_keys(deps: GatewayDeps) -> None:
    while True:
        try:
            purged = await purge_expired(deps.pool)
            if purged:
                log.info("idempotency_keys_purged", count=purged)
        except Exception as exc:  # the database may be restarting: try again next round
            log.warning("idempotency_purge_failed", error=f"{type(exc).__name__}: {exc}")
        await asyncio.sleep(PURGE_EVERY_SECONDS)


DEFINITION = ServiceDefinition(
    name="gateway",
    schema="gateway",
    migrations_dir=Path(__file__).parent / "migrations",
    description="HTTP edge: projects, API keys, service accounts, users; auth, roles, rate "
    "limits, OpenAPI",
    setup=setup,
    # Answers to Idempotency-Key requests (24 h): kept, so a client retrying across a restore
    # is still answered, not run twice. When service-account tokens were last used: written
    # by requests, not by events.
    unreplayable_tables=("idempotency_keys", "service_account_token_usage"),
)
