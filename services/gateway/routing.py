"""The declarative route table of the public HTTP API.

Every endpoint is one :class:`Route`: method, path, the roles it needs (``None`` = public), and
the Structs of its query, body and response. The dispatcher (``services.gateway.dispatch``)
authenticates, authorises, rate-limits, decodes and then calls the handler with a
:class:`RequestContext`; the OpenAPI document is generated from the same table.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from contracts.events.identity import ROLES
from shared.rpc import CallContext
from shared.service import Runtime

ALL_ROLES: frozenset[str] = frozenset(ROLES)


@dataclass(frozen=True, kw_only=True)
class Principal:
    """Who is calling: an API key and what it may do."""

    key_id: str
    name: str
    roles: frozenset[str]
    project_id: str | None = None

    @property
    def actor(self) -> str:
        return f"apikey:{self.key_id}"


@dataclass(kw_only=True)
class RequestContext:
    request: web.Request
    request_id: str
    runtime: Runtime
    principal: Principal | None = None
    body: Any = None
    query: Any = None

    @property
    def actor(self) -> str:
        return self.principal.actor if self.principal else "anonymous"

    def call_context(self) -> CallContext:
        roles = tuple(sorted(self.principal.roles)) if self.principal else ()
        return CallContext(request_id=self.request_id, actor=self.actor, roles=roles)


RouteHandler = Callable[[RequestContext], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, kw_only=True)
class Route:
    method: str
    path: str
    handler: RouteHandler
    # None: public, no token needed. Otherwise the caller needs at least one of these roles.
    roles: frozenset[str] | None
    summary: str
    tag: str
    query: type | None = None
    body: type | None = None
    response: type | None = None
    response_status: int = 200
    # Non-JSON responses (CSV, SVG, HTML) name their media type here for OpenAPI.
    response_media_type: str = "application/json"
    # Problem codes this route can answer besides the common ones (for OpenAPI).
    errors: tuple[int, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.roles is not None and (not self.roles or not self.roles <= ALL_ROLES):
            raise ValueError(f"{self.method} {self.path}: roles must be a non-empty subset of {ALL_ROLES}")


def roles(*names: str) -> frozenset[str]:
    return frozenset(names)
