"""API keys (service-account tokens) and ``/me``: who the caller is."""

from __future__ import annotations

import datetime as dt
import os

from aiohttp import web

from contracts.events.identity import ApiKeyCreated, ApiKeyRevoked
from contracts.ids import new_id
from services.gateway.adapters.read_model import find_key, find_project, find_user, list_keys
from services.gateway.deps import deps_of
from services.gateway.domain.access import may_see_project
from services.gateway.domain.errors import ApiKeyNotFound, FieldInvalid
from services.gateway.domain.tokens import (
    TOKEN_RANDOM_BYTES,
    display_prefix,
    new_token,
    token_sha256,
)
from services.gateway.dto import (
    ApiKeyCreate,
    ApiKeyIssued,
    ApiKeyList,
    ApiKeyListQuery,
    ApiKeyView,
    Me,
)
from services.gateway.routes._pages import after_key
from services.gateway.routing import ADMIN_ONLY, READ_ROLES, RequestContext, Route
from shared.http import json_response
from shared.pagination import split_page


async def create_api_key(ctx: RequestContext) -> web.StreamResponse:
    return await deps_of(ctx).writer.once(
        ctx.command_id,
        first=lambda: _create_api_key(ctx),
        again=lambda applied: _issued(ctx, applied.aggregate_id, token=None),
    )


async def _create_api_key(ctx: RequestContext) -> web.StreamResponse:
    deps, body, principal = deps_of(ctx), ctx.body, ctx.principal
    assert isinstance(body, ApiKeyCreate) and principal is not None
    if body.expires_at is not None and body.expires_at <= dt.datetime.now(dt.UTC):
        raise FieldInvalid("expires_at", "must be in the future")
    project_id = await _scope_of_new_key(ctx, body)
    user = await _user_of_new_key(ctx, body)
    token = new_token(os.urandom(TOKEN_RANDOM_BYTES))
    key_id = new_id()
    await deps.writer.emit(
        ApiKeyCreated(
            key_id=key_id,
            name=body.name,
            prefix=display_prefix(token),
            token_sha256=token_sha256(token),
            roles=sorted(set(body.roles)),
            project_id=project_id,
            expires_at=body.expires_at,
            user=user,
        ),
        aggregate=f"apikey:{key_id}",
        actor=ctx.actor,
        correlation_id=ctx.request_id,
    )
    return await _issued(ctx, key_id, token=token)


async def _issued(ctx: RequestContext, key_id: str, *, token: str | None) -> web.Response:
    """201 with the new key; ``token`` None when a re-run of the request found the key made
    by an earlier attempt (its token was shown to nobody: revoke the key if it is unknown)."""
    view = await find_key(deps_of(ctx).pool, key_id)
    assert view is not None  # emit returned: the read model has it
    issued = ApiKeyIssued(
        id=view.id,
        name=view.name,
        prefix=view.prefix,
        roles=view.roles,
        project_id=view.project_id,
        expires_at=view.expires_at,
        created_at=view.created_at,
        token=token,
        user=view.user,
    )
    headers = {"Location": f"/api/v1/api-keys/{key_id}", "Cache-Control": "no-store"}
    return json_response(issued, status=201, headers=headers)


async def _scope_of_new_key(ctx: RequestContext, body: ApiKeyCreate) -> str | None:
    """The project a new key is limited to; a scoped caller can only mint keys for its own."""
    principal = ctx.principal
    assert principal is not None
    if body.project is None:
        if principal.project_id is not None:
            raise FieldInvalid(
                "project", "a project-scoped key can only create keys for its project"
            )
        return None
    project = await find_project(deps_of(ctx).pool, body.project)
    if project is None or not may_see_project(
        key_project=principal.project_id, project_id=project.id
    ):
        raise FieldInvalid("project", f"no project {body.project!r}", code="unknown_project")
    if project.archived:
        raise FieldInvalid("project", f"project {project.slug!r} is archived")
    return project.id


async def _user_of_new_key(ctx: RequestContext, body: ApiKeyCreate) -> str | None:
    """The login (as the user spells it) a new key acts for; 422 ``unknown_user`` when no
    user has it. Users cannot be deleted, so the key's user stays valid."""
    if body.user is None:
        return None
    user = await find_user(deps_of(ctx).pool, body.user)
    if user is None:
        raise FieldInvalid("user", f"no user {body.user!r}", code="unknown_user")
    return user.login


async def list_api_keys(ctx: RequestContext) -> web.StreamResponse:
    deps, query, principal = deps_of(ctx), ctx.query, ctx.principal
    assert isinstance(query, ApiKeyListQuery) and principal is not None
    rows = await list_keys(
        deps.pool,
        after_id=after_key(query),
        limit=query.limit + 1,
        include_revoked=query.include_revoked,
        only_project=principal.project_id,
    )
    items, next_cursor = split_page(rows, limit=query.limit, key=lambda key: (key.id,))
    return json_response(ApiKeyList(items=items, next_cursor=next_cursor))


async def revoke_api_key(ctx: RequestContext) -> web.StreamResponse:
    deps, principal = deps_of(ctx), ctx.principal
    assert principal is not None
    key_id = ctx.request.match_info["key_id"]
    async with deps.writer.locked(f"apikey:{key_id}") as conn:
        key = await find_key(conn, key_id)
        if key is None or not _visible(key, principal.project_id):
            raise ApiKeyNotFound(key_id)
        if key.revoked_at is None:  # revoking twice is a no-op, not an error
            await deps.writer.emit(
                ApiKeyRevoked(key_id=key_id),
                aggregate=f"apikey:{key_id}",
                actor=ctx.actor,
                correlation_id=ctx.request_id,
            )
    return web.Response(status=204)


def _visible(key: ApiKeyView, scope: str | None) -> bool:
    return scope is None or key.project_id == scope


async def get_me(ctx: RequestContext) -> web.StreamResponse:
    p = ctx.principal
    assert p is not None
    me = Me(
        key_id=p.key_id,
        name=p.name,
        prefix=p.prefix,
        actor=p.actor,
        roles=sorted(p.roles),  # type: ignore[arg-type]
        project_id=p.project_id,
        expires_at=p.expires_at,
        bootstrap=p.bootstrap,
        user=p.user,
        service_account_id=p.service_account_id,
    )
    return json_response(me, headers={"Cache-Control": "no-store"})


ROUTES: list[Route] = [
    Route(
        method="POST",
        path="/api/v1/api-keys",
        handler=create_api_key,
        roles=ADMIN_ONLY,
        summary="Create an API key (optionally acting for a user); the response carries its "
        "token, shown this once only",
        tag="api-keys",
        body=ApiKeyCreate,
        response=ApiKeyIssued,
        response_status=201,
        allow_project_scoped=True,
        redact_on_replay=("token",),
    ),
    Route(
        method="GET",
        path="/api/v1/api-keys",
        handler=list_api_keys,
        roles=ADMIN_ONLY,
        summary="List API keys (never their tokens)",
        tag="api-keys",
        query=ApiKeyListQuery,
        response=ApiKeyList,
        allow_project_scoped=True,
    ),
    Route(
        method="DELETE",
        path="/api/v1/api-keys/{key_id}",
        handler=revoke_api_key,
        roles=ADMIN_ONLY,
        summary="Revoke an API key; it stops working on the next request",
        tag="api-keys",
        response_status=204,
        errors=(404,),
        allow_project_scoped=True,
    ),
    Route(
        method="GET",
        path="/api/v1/me",
        handler=get_me,
        roles=READ_ROLES,
        summary="The calling key or service-account token: its roles, project scope and expiry",
        tag="api-keys",
        response=Me,
        allow_project_scoped=True,
    ),
]
