"""Users' OpenPGP and SSH signing keys, as GitHub's ``/user/gpg_keys`` and
``/user/ssh_signing_keys`` (owned by the signature-verifier, asked over
``svc.signature-verifier.*``).

``/api/v1/user/...`` acts for the calling API key's user (``POST /api/v1/api-keys`` with
``user``): any role may list, upload, read and delete that user's keys, as any GitHub user
manages their own. A key acting for no user is answered 403 ``no_user_for_key``.
``GET /api/v1/users/{login}/...`` lists (or reads one of) any user's keys for every role, as
GitHub's public listing; ADMIN uploads and deletes keys for a user there. Users are not
per-project: project-scoped keys cannot use these routes (403), as ``/api/v1/users``.

The gateway decides what it can before asking: the user exists (404), the key's size (413
``key_too_large`` beyond the contract's bounds, before the body reaches the bus), the ``{id}``
(422 naming it unless an integer in 1..2^53), ``page``/``per_page``. Lists answer a JSON
array with GitHub's ``Link`` (``next``/``prev`` only). Uploads take ``Idempotency-Key``:
the command id goes with the call, so the owner records the key once. An upload or a
deletion empties the gateway's commits cache (any repo's verifications may change).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from aiohttp import web
from yarl import URL

from contracts.events.signatures import ARMORED_KEY_MAX_CHARS, SSH_KEY_MAX_CHARS
from contracts.rpc import signatures as rpc
from services.gateway.adapters.read_model import find_user
from services.gateway.commits_cache import commits_changed
from services.gateway.deps import deps_of
from services.gateway.domain.errors import NoUserForKey, SigningKeyTooLarge, UserNotFound
from services.gateway.routes._upstream import ask
from services.gateway.routing import (
    ADMIN_ONLY,
    READ_ROLES,
    RequestContext,
    Route,
    RouteHandler,
)
from shared.errors import ValidationFailed
from shared.http import json_response
from shared.page_links import page_link_header

Kind = Literal["gpg", "ssh"]
_KEY_ID_MAX = 2**53  # contracts.events.signatures.KeyStoreId
_ERRORS = (404, 413, 502, 503, 504)


class KeysPageQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    page: Annotated[int, msgspec.Meta(ge=1, le=1_000_000, description="Page number, from 1")] = 1
    per_page: Annotated[
        int, msgspec.Meta(ge=1, le=rpc.PER_PAGE_MAX, description="Keys per page, 1..100")
    ] = rpc.PER_PAGE_DEFAULT


# ---- who ------------------------------------------------------------------------------------
def _own_login(ctx: RequestContext) -> str:
    user = ctx.principal.user if ctx.principal else None
    if user is None:
        raise NoUserForKey()
    return user


async def _path_login(ctx: RequestContext) -> str:
    """The user named by ``{login}``, spelled as stored; 404 when there is none."""
    ref = ctx.request.match_info["login"]
    user = await find_user(deps_of(ctx).pool, ref)
    if user is None:
        raise UserNotFound(ref)
    return user.login


def _path_key_id(ctx: RequestContext) -> int:
    raw = ctx.request.match_info["id"]
    if raw.isascii() and raw.isdigit() and 0 < len(raw) <= 16 and 1 <= int(raw) <= _KEY_ID_MAX:
        return int(raw)
    message = f"a key id is an integer from 1 to {_KEY_ID_MAX}"
    raise ValidationFailed(
        f"path parameter id: {message}",
        extra={"errors": [{"field": "id", "message": message, "in": "path"}]},
    )


# ---- the calls --------------------------------------------------------------------------------
def _location(ctx: RequestContext, kind: Kind, key_id: int) -> str:
    collection = "gpg_keys" if kind == "gpg" else "ssh_signing_keys"
    if "login" in ctx.request.match_info:
        return f"/api/v1/users/{ctx.request.match_info['login']}/{collection}/{key_id}"
    return f"/api/v1/user/{collection}/{key_id}"


async def _add(ctx: RequestContext, kind: Kind, login: str) -> web.StreamResponse:
    body = ctx.body
    if kind == "gpg":
        assert isinstance(body, rpc.GpgKeyBody)
        _bounded("armored_public_key", body.armored_public_key, ARMORED_KEY_MAX_CHARS)
        gpg = await ask(
            ctx,
            rpc.SERVICE,
            rpc.GPG_KEY_ADD,
            rpc.GpgKeyAddRequest(login=login, key=body),
            rpc.GpgKey,
        )
        commits_changed(ctx)
        return json_response(gpg, status=201, headers={"Location": _location(ctx, kind, gpg.id)})
    assert isinstance(body, rpc.SshKeyBody)
    _bounded("key", body.key, SSH_KEY_MAX_CHARS)
    ssh = await ask(
        ctx,
        rpc.SERVICE,
        rpc.SSH_KEY_ADD,
        rpc.SshKeyAddRequest(login=login, key=body),
        rpc.SshSigningKey,
    )
    commits_changed(ctx)
    return json_response(ssh, status=201, headers={"Location": _location(ctx, kind, ssh.id)})


def _bounded(field: str, value: str, limit: int) -> None:
    """413 for a key beyond what an event may carry: it never goes on the bus."""
    if len(value) > limit:
        raise SigningKeyTooLarge(
            f"{field} has {len(value)} characters; at most {limit} are accepted",
            extra={"limit": limit, "errors": [{"field": f"$.{field}", "message": "too long"}]},
        )


async def _list(ctx: RequestContext, kind: Kind, login: str) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, KeysPageQuery)
    request = rpc.KeysListRequest(login=login, page=query.page, per_page=query.per_page)
    page: rpc.GpgKeysPage | rpc.SshKeysPage
    if kind == "gpg":
        page = await ask(ctx, rpc.SERVICE, rpc.GPG_KEYS_LIST, request, rpc.GpgKeysPage)
    else:
        page = await ask(ctx, rpc.SERVICE, rpc.SSH_KEYS_LIST, request, rpc.SshKeysPage)
    link = page_link_header(
        _public_url(ctx), page=query.page, per_page=query.per_page, has_next=page.has_next
    )
    return json_response(page.items, headers={"Link": link} if link else None)


def _public_url(ctx: RequestContext) -> URL:
    """The request's URL as clients reach it: ``GATEHOUSE_PUBLIC_URL`` when set (behind a
    proxy the Host header names the gateway, not the public name)."""
    base = deps_of(ctx).settings.public_url.rstrip("/")
    return URL(base).join(ctx.request.rel_url) if base else ctx.request.url


async def _get(ctx: RequestContext, kind: Kind, login: str) -> web.StreamResponse:
    request = rpc.KeyRequest(id=_path_key_id(ctx), login=login)
    if kind == "gpg":
        return json_response(await ask(ctx, rpc.SERVICE, rpc.GPG_KEY_GET, request, rpc.GpgKey))
    return json_response(await ask(ctx, rpc.SERVICE, rpc.SSH_KEY_GET, request, rpc.SshSigningKey))


async def _delete(ctx: RequestContext, kind: Kind, login: str) -> web.StreamResponse:
    request = rpc.KeyRequest(id=_path_key_id(ctx), login=login)
    operation = rpc.GPG_KEY_DELETE if kind == "gpg" else rpc.SSH_KEY_DELETE
    # The contract names no reply for a deletion: any JSON the owner answers means done.
    await ask(ctx, rpc.SERVICE, operation, request, msgspec.Raw)  # type: ignore[type-var]
    commits_changed(ctx)
    return web.Response(status=204)


# ---- handlers ---------------------------------------------------------------------------------
Scope = Literal["own", "user"]
Action = Literal["add", "list", "get", "delete"]
_ACTIONS = {"add": _add, "list": _list, "get": _get, "delete": _delete}


def _handler(kind: Kind, scope: Scope, action: Action) -> RouteHandler:
    """The route handler of ``action`` on ``kind`` keys of the calling key's user (``own``)
    or of the user named by ``{login}``."""
    act = _ACTIONS[action]

    async def handle(ctx: RequestContext) -> web.StreamResponse:
        login = _own_login(ctx) if scope == "own" else await _path_login(ctx)
        return await act(ctx, kind, login)

    handle.__name__ = f"{action}_{scope}_{kind}_key"
    return handle


def _routes(kind: Kind) -> list[Route]:
    gpg = kind == "gpg"
    collection = "gpg_keys" if gpg else "ssh_signing_keys"
    what = "OpenPGP public key" if gpg else "SSH signing key"
    body = rpc.GpgKeyBody if gpg else rpc.SshKeyBody
    one = rpc.GpgKey if gpg else rpc.SshSigningKey
    tag = "signing-keys"
    routes: list[Route] = []
    scopes: tuple[tuple[Scope, str], ...] = (
        ("own", "/api/v1/user"),
        ("user", "/api/v1/users/{login}"),
    )
    for scope, base in scopes:
        whose = "the calling key's user" if scope == "own" else "the user"
        writers = READ_ROLES if scope == "own" else ADMIN_ONLY
        routes += [
            Route(
                method="POST",
                path=f"{base}/{collection}",
                handler=_handler(kind, scope, "add"),
                roles=writers,
                summary=f"Upload an {what} for {whose}: 201 with Location; commits it signed "
                "are re-verified (backfill)",
                tag=tag,
                body=body,
                response=one,
                response_status=201,
                errors=_ERRORS,
            ),
            Route(
                method="GET",
                path=f"{base}/{collection}",
                handler=_handler(kind, scope, "list"),
                roles=READ_ROLES,
                summary=f"The {what}s of {whose} (page, per_page; Link next/prev)",
                tag=tag,
                query=KeysPageQuery,
                response=list[one],  # type: ignore[valid-type]
                errors=_ERRORS,
            ),
            Route(
                method="GET",
                path=f"{base}/{collection}/{{id}}",
                handler=_handler(kind, scope, "get"),
                roles=READ_ROLES,
                summary=f"One {what} of {whose}, with its backfill progress",
                tag=tag,
                response=one,
                errors=_ERRORS,
            ),
            Route(
                method="DELETE",
                path=f"{base}/{collection}/{{id}}",
                handler=_handler(kind, scope, "delete"),
                roles=writers,
                summary=f"Delete an {what} of {whose}: commits it verified read unsigned",
                tag=tag,
                response_status=204,
                errors=_ERRORS,
            ),
        ]
    return routes


ROUTES: list[Route] = _routes("gpg") + _routes("ssh")
