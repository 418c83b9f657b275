"""What the gateway's handlers share, built once in ``app.setup`` and kept on the runtime."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from services.gateway.adapters.idempotency_store import ProcessLiveness
from services.gateway.keycache import KeyCache
from services.gateway.last_used import LastUseRecorder
from services.gateway.ratelimiter import FailedAuthThrottle, RateLimiter
from services.gateway.routing import RequestContext, Route
from services.gateway.writes import CommandWriter
from shared.artifact_blobs import ArtifactBlobStore
from shared.projection import ProjectionRunner
from shared.service import Runtime
from shared.settings import Settings

DEPS_KEY = "gateway"


@dataclass(kw_only=True)
class GatewayDeps:
    runtime: Runtime
    runner: ProjectionRunner
    writer: CommandWriter
    routes: list[Route]
    token_limiter: RateLimiter
    ip_limiter: RateLimiter
    auth_throttle: FailedAuthThrottle
    key_cache: KeyCache
    liveness: ProcessLiveness
    # Package files by digest (the package protocols stream into and out of it).
    artifact_blobs: ArtifactBlobStore
    last_use: LastUseRecorder = field(default_factory=LastUseRecorder)
    # Documents derived from the routes alone (OpenAPI, docs page), built on first use.
    rendered: dict[str, Any] = field(default_factory=dict)

    @property
    def pool(self) -> asyncpg.Pool:
        return self.runtime.pool

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    @property
    def idempotency_stale_after(self) -> dt.timedelta:
        """A running attempt older than any request can take was abandoned, even when its
        process still looks alive (hung). A dead process's attempt is taken over at once."""
        s = self.settings
        return dt.timedelta(
            seconds=max(60.0, 3 * (s.read_your_writes_timeout_seconds + s.rpc_timeout_seconds))
        )


def deps_of(ctx: RequestContext) -> GatewayDeps:
    found: GatewayDeps = ctx.runtime.state[DEPS_KEY]
    return found
