"""The declarative route table of the public HTTP API.

Every endpoint is one :class:`Route`: method, path, the roles it needs (``None`` = public), and
the Structs of its query, body and response. The dispatcher (``services.gateway.dispatch``)
authenticates, authorises, rate-limits, decodes and then calls the handler with a
:class:`RequestContext`; the OpenAPI document is generated from the same table.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from contracts.events.identity import ROLES
from shared.rpc import CallContext
from shared.service import Runtime
from shared.settings import Settings

ALL_ROLES: frozenset[str] = frozenset(ROLES)
# Reads of identity and most resources: any role.
READ_ROLES = ALL_ROLES
ADMIN_ONLY: frozenset[str] = frozenset({"ADMIN"})


@dataclass(frozen=True, kw_only=True)
class Principal:
    """Who is calling: an API key or a service-account token, and what it may do."""

    key_id: str
    name: str
    roles: frozenset[str]
    project_id: str | None = None
    prefix: str = ""
    expires_at: dt.datetime | None = None
    bootstrap: bool = False
    # The user (login) the key acts for on `/api/v1/user/...`; None: the key acts for nobody.
    user: str | None = None
    # A service-account token (``key_id`` is the token's id): the account it acts as. Events
    # and the audit log name the account, whichever of its tokens was used.
    service_account_id: str | None = None

    @property
    def actor(self) -> str:
        if self.service_account_id is not None:
            return f"serviceaccount:{self.service_account_id}"
        return f"apikey:{self.key_id}"


@dataclass(kw_only=True)
class RequestContext:
    request: web.Request
    request_id: str
    runtime: Runtime
    principal: Principal | None = None
    body: Any = None
    query: Any = None
    # Set for a request with an Idempotency-Key: the command it is (shared.commands).
    command_id: str = ""

    @property
    def actor(self) -> str:
        return self.principal.actor if self.principal else "anonymous"

    def call_context(self) -> CallContext:
        roles = tuple(sorted(self.principal.roles)) if self.principal else ()
        return CallContext(
            request_id=self.request_id, actor=self.actor, roles=roles, command_id=self.command_id
        )


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
    # Other success statuses the route answers with the same body (a PUT that creates: 201;
    # a POST that finds the same resource already there: 200), for OpenAPI.
    also_succeeds: tuple[int, ...] = ()
    # Non-JSON responses (CSV, SVG, HTML) name their media type here for OpenAPI.
    response_media_type: str = "application/json"
    # Other media types of the same response, when a query parameter picks the format (an
    # SBOM as CycloneDX JSON or XML or SPDX; a notice as text, markdown or HTML).
    also_media_types: tuple[str, ...] = ()
    # Problem codes this route can answer besides the common ones (for OpenAPI).
    errors: tuple[int, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    # Project scope. A key limited to one project may call a route only when the route names
    # the project in this path parameter (id or slug; any other project is a 404), or when
    # the route sets ``allow_project_scoped`` and its handler filters to
    # ``ctx.principal.project_id`` itself. Every other route answers such a key 403: closed
    # by default, so a new route cannot leak other projects' data to a scoped key.
    project_param: str | None = None
    allow_project_scoped: bool = False
    # Top-level response fields an Idempotency-Key replay answers as null instead of storing
    # them (secrets shown once, such as a new API key's token).
    redact_on_replay: tuple[str, ...] = ()
    # Media types of a raw upload body (a zip, an SBOM, a CSV): the dispatcher reads it up to
    # ``max_upload_bytes`` into ``ctx.body`` as an :class:`Upload` (415 for another type).
    upload: tuple[str, ...] = ()
    # The setting bounding that upload when not ``max_upload_bytes`` (e.g. a webhook's
    # ``webhook_max_body_bytes``): the body is never read beyond it.
    upload_limit: Callable[[Settings], int] | None = None

    def __post_init__(self) -> None:
        if self.roles is not None and (not self.roles or not self.roles <= ALL_ROLES):
            raise ValueError(
                f"{self.method} {self.path}: roles must be a non-empty subset of {ALL_ROLES}"
            )
        if self.project_param is not None and "{" + self.project_param + "}" not in self.path:
            raise ValueError(f"{self.method} {self.path}: no path parameter {self.project_param}")
        if self.upload and self.body is not None:
            raise ValueError(f"{self.method} {self.path}: a JSON body or an upload, not both")


@dataclass(frozen=True, kw_only=True)
class Upload:
    """A raw request body as uploaded: its media type (parameters dropped), bytes and digest."""

    media_type: str
    data: bytes
    digest: str  # sha256:<hex>, the blob store's name for it


def roles(*names: str) -> frozenset[str]:
    return frozenset(names)
