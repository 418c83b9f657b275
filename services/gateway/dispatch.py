"""The dispatcher: every Route runs behind the same steps, in this order.

authenticate (Bearer) → authorise (roles) → path parameters → project scope → rate limit →
decode query and body → Idempotency-Key (POST) → handler. Path parameters, query and body
all pass ``shared.edge_limits`` (nothing a consumer cannot store goes further).

Public routes (``roles=None``) skip authentication, roles and project scope and are
rate-limited by client address. Errors are raised as GatehouseErrors; the kit's edge
middleware answers them as problem+json.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import types
import typing
from typing import Any

import msgspec
from aiohttp import web

from services.gateway.adapters.read_model import find_project, key_by_token_hash
from services.gateway.deps import GatewayDeps
from services.gateway.domain.access import (
    bearer_token,
    may_see_project,
    require_roles,
    require_scope_allows,
    usable_key,
)
from services.gateway.domain.errors import InvalidToken, ProjectNotFound
from services.gateway.domain.idempotency import check_key
from services.gateway.domain.tokens import is_well_formed, token_sha256
from services.gateway.idempotency import run_idempotent
from services.gateway.routing import Principal, RequestContext, Route
from services.gateway.uploads import read_upload
from shared.edge_limits import refuse_unstorable
from shared.errors import Unauthorized, ValidationFailed
from shared.http import Handler, decode_json_body, field_error, request_id_of
from shared.settings import Settings

IDEMPOTENCY_HEADER = "Idempotency-Key"


def install_routes(app: web.Application, routes: list[Route], deps: GatewayDeps) -> None:
    for route in routes:
        app.router.add_route(route.method, route.path, _dispatcher(route, deps))


def _dispatcher(route: Route, deps: GatewayDeps) -> Handler:
    async def dispatch(request: web.Request) -> web.StreamResponse:
        ctx = RequestContext(
            request=request, request_id=request_id_of(request), runtime=deps.runtime
        )
        if route.roles is None:
            deps.ip_limiter.check(f"ip:{client_address(request)}")
        else:
            ctx.principal = await authenticate(request, deps)
            require_roles(ctx.principal.roles, route.roles)
        check_path_params(request)
        if ctx.principal is not None:
            await _check_project_scope(ctx.principal, route, request, deps)
            deps.token_limiter.check(f"key:{ctx.principal.key_id}")
        if route.query is not None:
            ctx.query = decode_query(request, route.query)
        if route.body is not None:
            ctx.body = await decode_json_body(
                request, route.body, max_bytes=deps.settings.max_body_bytes
            )
        elif route.upload:
            limit = route.upload_limit or _max_upload_bytes
            ctx.body = await read_upload(request, route.upload, max_bytes=limit(deps.settings))
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if request.method == "POST" and key is not None and ctx.principal is not None:
            return await run_idempotent(ctx, route, check_key(key), deps)
        return await route.handler(ctx)

    dispatch.__name__ = f"{route.method.lower()}_{route.handler.__name__}"
    return dispatch


def _max_upload_bytes(settings: Settings) -> int:
    return settings.max_upload_bytes


def client_address(request: web.Request) -> str:
    """The TCP peer: ``X-Forwarded-For`` is not trusted (anyone can send it)."""
    return request.remote or "unknown"


async def authenticate(request: web.Request, deps: GatewayDeps) -> Principal:
    """The caller of an ``Authorization: Bearer <token>`` request (401 without one)."""
    return await authenticate_token(
        bearer_token(request.headers.get("Authorization")), request, deps
    )


async def authenticate_token(token: str, request: web.Request, deps: GatewayDeps) -> Principal:
    """The API key or service-account token ``token`` from the read model (through the
    checkpoint-bound cache): a revocation applies to the very next request, an expiry the
    moment it passes. An address that failed too often is refused before an unknown token
    costs a database lookup. A service-account token's use is recorded (once a minute).
    (The package protocols pass the password of their HTTP Basic credentials here.)"""
    if not is_well_formed(token):
        raise InvalidToken()
    token_hash = token_sha256(token)
    address = client_address(request)
    deps.auth_throttle.check(address, known_token=deps.key_cache.known(token_hash))
    stored = await deps.key_cache.lookup(
        token_hash, lambda: key_by_token_hash(deps.pool, token_hash)
    )
    now = dt.datetime.now(dt.UTC)
    try:
        key = usable_key(stored, now=now)
    except Unauthorized:
        deps.auth_throttle.failed(address)
        raise
    if key.service_account_id is not None:
        await deps.last_use.used(deps.pool, key.key_id, now)
    return Principal(
        key_id=key.key_id,
        name=key.name,
        roles=key.roles,
        project_id=key.project_id,
        prefix=key.prefix,
        expires_at=key.expires_at,
        bootstrap=key.bootstrap,
        user=key.user,
        service_account_id=key.service_account_id,
    )


async def _check_project_scope(
    principal: Principal, route: Route, request: web.Request, deps: GatewayDeps
) -> None:
    require_scope_allows(
        key_project=principal.project_id,
        route_has_project_param=route.project_param is not None,
        route_allows_scoped=route.allow_project_scoped,
    )
    if principal.project_id is None or route.project_param is None:
        return
    ref = request.match_info.get(route.project_param, "")
    project = await find_project(deps.pool, ref)
    # Another project answers exactly like a missing one: a scoped key learns nothing.
    if project is None or not may_see_project(
        key_project=principal.project_id, project_id=project.id
    ):
        raise ProjectNotFound(ref)


def decode_query(request: web.Request, type_: type) -> Any:
    """The query string as ``type_`` (values converted from text); 422 naming the field."""
    list_fields = _list_fields(type_)
    raw: dict[str, Any] = {}
    for name in set(request.query.keys()):
        values = request.query.getall(name)
        if any("\x00" in v for v in values) or "\x00" in name:
            message = "NUL characters are not accepted"
            error = {"field": f"$.{name}", "message": message, "in": "query"}
            raise ValidationFailed(f"query parameter {name}: {message}", extra={"errors": [error]})
        raw[name] = values if name in list_fields else values[-1]
    refuse_numeric_datetimes(raw, type_)
    try:
        query = msgspec.convert(raw, type_, strict=False)
    except msgspec.ValidationError as exc:
        error = {**field_error(str(exc)), "in": "query"}
        raise ValidationFailed(f"query parameter: {exc}", extra={"errors": [error]}) from exc
    refuse_unstorable(query, where="query")
    return query


def check_path_params(request: web.Request) -> None:
    """422 naming the path parameter a consumer could not store (``%00`` decodes to NUL),
    before anything looks it up."""
    refuse_unstorable(dict(request.match_info), where="path")


# Per query type, once: msgspec.structs.fields evaluates the annotations every time it is
# called, which cost about half of a cached decision read's CPU.
@functools.cache
def _list_fields(type_: type) -> frozenset[str]:
    names = set()
    for field in msgspec.structs.fields(type_):
        annotation = field.type
        while typing.get_origin(annotation) is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        origin = typing.get_origin(annotation)
        union = origin in (typing.Union, types.UnionType)
        options = typing.get_args(annotation) if union else (annotation,)
        if any(typing.get_origin(option) is list for option in options):
            names.add(field.encode_name)
    return frozenset(names)


# A query string is text, so it is converted laxly (strict=False: "5" is 5) — and lax msgspec
# also reads a number as a Unix time ("0.5" is 1970-01-01T00:00:00.5Z). A date-time parameter
# is RFC 3339, as documented: it must start with a date.
_RFC3339_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def refuse_numeric_datetimes(raw: dict[str, Any], type_: type) -> None:
    """422 for a date-time query parameter that is not RFC 3339 text (a bare number)."""
    for name in _datetime_fields(type_) & raw.keys():
        values = raw[name] if isinstance(raw[name], list) else [raw[name]]
        if not all(_RFC3339_DATE.match(value) for value in values):
            message = "expected an RFC 3339 date-time with offset, e.g. 2026-01-31T12:00:00Z"
            error = {"field": f"$.{name}", "message": message, "in": "query"}
            raise ValidationFailed(f"query parameter {name}: {message}", extra={"errors": [error]})


@functools.cache
def _datetime_fields(type_: type) -> frozenset[str]:
    names = set()
    for field in msgspec.structs.fields(type_):
        pending = [field.type]
        while pending:
            annotation = pending.pop()
            if typing.get_origin(annotation) is typing.Annotated:
                annotation = typing.get_args(annotation)[0]
            if annotation is dt.datetime:
                names.add(field.encode_name)
            pending.extend(typing.get_args(annotation))
    return frozenset(names)
