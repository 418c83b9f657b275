"""Service accounts of a project and their tokens, at OrbitalReg's paths.

A service account is a machine principal of one project; its tokens (``gsa_…``) act with a
subset of its roles, within that project only, until they expire, are revoked or the account
is deleted. Roles: ADMIN (or a project-scoped ADMIN of that project) creates and deletes
accounts and mints and revokes tokens; any role of the project lists and reads them. The
dispatcher keeps a project-scoped caller to its own project (``project_param``): another
project answers 404, as a missing one does.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid

from aiohttp import web

from contracts.events.identity import (
    ServiceAccountCreated,
    ServiceAccountDeleted,
    ServiceAccountTokenCreated,
    ServiceAccountTokenRevoked,
)
from contracts.ids import new_id
from services.gateway.adapters.service_accounts import (
    find_service_account,
    find_token,
    list_service_accounts,
    list_tokens,
    name_in_use,
)
from services.gateway.deps import deps_of
from services.gateway.domain.errors import ProjectArchived as ProjectIsArchived
from services.gateway.domain.errors import (
    ServiceAccountNameTaken,
    ServiceAccountNotFound,
    ServiceAccountTokenNotFound,
)
from services.gateway.domain.service_accounts import (
    check_new_name,
    service_account_id,
    token_expiry,
    token_id,
    token_roles,
)
from services.gateway.domain.tokens import (
    TOKEN_RANDOM_BYTES,
    display_prefix,
    new_service_account_token,
    token_sha256,
)
from services.gateway.dto import (
    ProjectView,
    ServiceAccountCreate,
    ServiceAccountList,
    ServiceAccountListQuery,
    ServiceAccountTokenCreate,
    ServiceAccountTokenIssued,
    ServiceAccountTokenList,
    ServiceAccountTokenListQuery,
    ServiceAccountView,
)
from services.gateway.routes._pages import after_key
from services.gateway.routes._upstream import project_of
from services.gateway.routing import ADMIN_ONLY, READ_ROLES, RequestContext, Route
from shared.http import json_response
from shared.pagination import split_page

ACCOUNTS = "/api/v1/projects/{project}/service_accounts"
ACCOUNT = ACCOUNTS + "/{sa}"
TOKENS = ACCOUNT + "/tokens"
TOKEN = TOKENS + "/{token_id}"
TAG = "service-accounts"


async def _account(ctx: RequestContext, project: ProjectView) -> ServiceAccountView:
    ref = ctx.request.match_info["sa"]
    account = await find_service_account(deps_of(ctx).pool, project.id, ref)
    if account is None:
        raise ServiceAccountNotFound(ref)
    return account


def _account_location(account: ServiceAccountView) -> str:
    return f"/api/v1/projects/{account.project_id}/service_accounts/{account.id}"


# ---- accounts ------------------------------------------------------------------------------
async def create_service_account(ctx: RequestContext) -> web.StreamResponse:
    return await deps_of(ctx).writer.once(
        ctx.command_id,
        first=lambda: _create_service_account(ctx),
        again=lambda applied: _account_created(ctx, applied.aggregate_id),
    )


async def _create_service_account(ctx: RequestContext) -> web.StreamResponse:
    deps, body = deps_of(ctx), ctx.body
    assert isinstance(body, ServiceAccountCreate)
    check_new_name(body.name)
    project = await project_of(ctx)
    account_id = service_account_id(uuid.UUID(new_id()))
    async with deps.writer.locked(f"serviceaccount-name:{project.id}:{body.name}") as conn:
        if project.archived:
            raise ProjectIsArchived(f"project {project.slug!r} is archived")
        if await name_in_use(conn, project.id, body.name):
            raise ServiceAccountNameTaken(
                f"project {project.slug!r} has a service account named {body.name!r} already",
                extra={"name": body.name},
            )
        await deps.writer.emit(
            ServiceAccountCreated(
                id=account_id,
                project_id=project.id,
                name=body.name,
                description=body.description,
                roles=sorted(set(body.roles)),
            ),
            aggregate=f"serviceaccount:{account_id}",
            actor=ctx.actor,
            correlation_id=ctx.request_id,
        )
    return await _account_created(ctx, account_id)


async def _account_created(ctx: RequestContext, account_id: str) -> web.Response:
    project = await project_of(ctx)
    account = await find_service_account(deps_of(ctx).pool, project.id, account_id)
    if account is None:  # a replayed request whose account was deleted since
        raise ServiceAccountNotFound(account_id)
    return json_response(account, status=201, headers={"Location": _account_location(account)})


async def list_all_service_accounts(ctx: RequestContext) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, ServiceAccountListQuery)
    project = await project_of(ctx)
    rows = await list_service_accounts(
        deps_of(ctx).pool,
        project.id,
        after_name=after_key(query),
        name=query.name,
        limit=query.limit + 1,
    )
    items, next_cursor = split_page(rows, limit=query.limit, key=lambda a: (a.name,))
    return json_response(ServiceAccountList(items=items, next_cursor=next_cursor))


async def get_service_account(ctx: RequestContext) -> web.StreamResponse:
    return json_response(await _account(ctx, await project_of(ctx)))


async def delete_service_account(ctx: RequestContext) -> web.StreamResponse:
    deps = deps_of(ctx)
    project = await project_of(ctx)
    account = await _account(ctx, project)
    async with deps.writer.locked(f"serviceaccount:{account.id}") as conn:
        # Deleted meanwhile by another request: 404 as for any missing account.
        if await find_service_account(conn, project.id, account.id) is None:
            raise ServiceAccountNotFound(ctx.request.match_info["sa"])
        await deps.writer.emit(
            ServiceAccountDeleted(id=account.id),
            aggregate=f"serviceaccount:{account.id}",
            actor=ctx.actor,
            correlation_id=ctx.request_id,
        )
    return web.Response(status=204)


# ---- tokens --------------------------------------------------------------------------------
async def mint_token(ctx: RequestContext) -> web.StreamResponse:
    return await deps_of(ctx).writer.once(
        ctx.command_id,
        first=lambda: _mint_token(ctx),
        again=lambda applied: _token_issued(ctx, applied.aggregate_id, token=None),
    )


async def _mint_token(ctx: RequestContext) -> web.StreamResponse:
    deps, body = deps_of(ctx), ctx.body
    assert isinstance(body, ServiceAccountTokenCreate)
    project = await project_of(ctx)
    account = await _account(ctx, project)
    expires_at = token_expiry(
        expires_at=body.expires_at,
        expires_in_days=body.expires_in_days,
        now=dt.datetime.now(dt.UTC),
    )
    roles = token_roles(account.roles, body.roles)
    if project.archived:
        raise ProjectIsArchived(f"project {project.slug!r} is archived")
    token = new_service_account_token(os.urandom(TOKEN_RANDOM_BYTES))
    new_token_id = token_id(uuid.UUID(new_id()))
    async with deps.writer.locked(f"serviceaccount:{account.id}") as conn:
        # A token is never minted for an account being deleted.
        if await find_service_account(conn, project.id, account.id) is None:
            raise ServiceAccountNotFound(ctx.request.match_info["sa"])
        await deps.writer.emit(
            ServiceAccountTokenCreated(
                id=new_token_id,
                service_account_id=account.id,
                project_id=project.id,
                name=body.name,
                prefix=display_prefix(token),
                token_sha256=token_sha256(token),
                roles=roles,  # type: ignore[arg-type]  # the account's roles: Role values
                expires_at=expires_at,
            ),
            aggregate=f"serviceaccount-token:{new_token_id}",
            actor=ctx.actor,
            correlation_id=ctx.request_id,
        )
    return await _token_issued(ctx, new_token_id, token=token)


async def _token_issued(
    ctx: RequestContext, new_token_id: str, *, token: str | None
) -> web.Response:
    """201 with the new token; ``token`` None when a re-run of the request found the token
    made by an earlier attempt (shown to nobody: revoke it if it is unknown)."""
    account = await _account(ctx, await project_of(ctx))
    view = await find_token(deps_of(ctx).pool, account.id, new_token_id)
    if view is None:  # a replayed request whose account was deleted and replaced since
        raise ServiceAccountTokenNotFound(new_token_id)
    issued = ServiceAccountTokenIssued(
        id=view.id,
        service_account_id=view.service_account_id,
        project_id=view.project_id,
        name=view.name,
        prefix=view.prefix,
        roles=view.roles,
        expires_at=view.expires_at,
        created_at=view.created_at,
        token=token,
    )
    headers = {
        "Location": f"{_account_location(account)}/tokens/{view.id}",
        "Cache-Control": "no-store",
    }
    return json_response(issued, status=201, headers=headers)


async def list_account_tokens(ctx: RequestContext) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, ServiceAccountTokenListQuery)
    account = await _account(ctx, await project_of(ctx))
    rows = await list_tokens(
        deps_of(ctx).pool, account.id, after_id=after_key(query), limit=query.limit + 1
    )
    items, next_cursor = split_page(rows, limit=query.limit, key=lambda t: (t.id,))
    return json_response(ServiceAccountTokenList(items=items, next_cursor=next_cursor))


async def revoke_token(ctx: RequestContext) -> web.StreamResponse:
    deps = deps_of(ctx)
    account = await _account(ctx, await project_of(ctx))
    wanted = ctx.request.match_info["token_id"]
    async with deps.writer.locked(f"serviceaccount:{account.id}") as conn:
        token = await find_token(conn, account.id, wanted)
        if token is None:
            raise ServiceAccountTokenNotFound(wanted)
        if token.revoked_at is None:  # revoking twice is a no-op, not an error
            await deps.writer.emit(
                ServiceAccountTokenRevoked(id=token.id, service_account_id=account.id),
                aggregate=f"serviceaccount-token:{token.id}",
                actor=ctx.actor,
                correlation_id=ctx.request_id,
            )
    return web.Response(status=204)


ROUTES: list[Route] = [
    Route(
        method="POST",
        path=ACCOUNTS,
        handler=create_service_account,
        roles=ADMIN_ONLY,
        summary="Create a service account of the project: a machine principal whose tokens "
        "act with at most its roles, in this project only",
        tag=TAG,
        body=ServiceAccountCreate,
        response=ServiceAccountView,
        response_status=201,
        errors=(404, 409),
        project_param="project",
    ),
    Route(
        method="GET",
        path=ACCOUNTS,
        handler=list_all_service_accounts,
        roles=READ_ROLES,
        summary="List the project's service accounts by name (?name= for one)",
        tag=TAG,
        query=ServiceAccountListQuery,
        response=ServiceAccountList,
        errors=(404,),
        project_param="project",
    ),
    Route(
        method="GET",
        path=ACCOUNT,
        handler=get_service_account,
        roles=READ_ROLES,
        summary="Read a service account by id (sa_…) or name",
        tag=TAG,
        response=ServiceAccountView,
        errors=(404,),
        project_param="project",
    ),
    Route(
        method="DELETE",
        path=ACCOUNT,
        handler=delete_service_account,
        roles=ADMIN_ONLY,
        summary="Delete a service account; every token of it stops working on the next request",
        tag=TAG,
        response_status=204,
        errors=(404,),
        project_param="project",
    ),
    Route(
        method="POST",
        path=TOKENS,
        handler=mint_token,
        roles=ADMIN_ONLY,
        summary="Mint a token (gsa_…) for the service account; the response carries it, shown "
        "this once only",
        tag=TAG,
        body=ServiceAccountTokenCreate,
        response=ServiceAccountTokenIssued,
        response_status=201,
        errors=(404, 409),
        project_param="project",
        redact_on_replay=("token",),
    ),
    Route(
        method="GET",
        path=TOKENS,
        handler=list_account_tokens,
        roles=READ_ROLES,
        summary="List the service account's tokens (never the tokens themselves): prefix, "
        "roles, expiry, last use, revocation",
        tag=TAG,
        query=ServiceAccountTokenListQuery,
        response=ServiceAccountTokenList,
        errors=(404,),
        project_param="project",
    ),
    Route(
        method="DELETE",
        path=TOKEN,
        handler=revoke_token,
        roles=ADMIN_ONLY,
        summary="Revoke a token of the service account; it stops working on the next request",
        tag=TAG,
        response_status=204,
        errors=(404,),
        project_param="project",
    ),
]
