"""Webhook subscriptions (owned by the webhook-fanout, asked over
``svc.webhook-fanout.webhook_*``). ADMIN only; a project-scoped key is refused (403): a
subscription may receive every project's events.

* ``POST /api/admin/webhooks`` ``{url, events, project?, description?, enabled?, format?,
  secret?}`` → 201 with the subscription and its ``secret``, shown this once (``Location``).
* ``GET /api/admin/webhooks`` (cursor), ``GET/PATCH/DELETE /api/admin/webhooks/{id}``:
  ``ETag: "v<revision>"``; PATCH and DELETE honour ``If-Match`` (412 precondition_failed).
* ``POST /api/admin/webhooks/{id}/rotate-secret`` ``{grace_seconds?, secret?}`` → the new
  secret, shown this once; the previous one keeps signing for the grace period.

``project`` is a project id or slug, resolved here (the gateway owns projects). An
Idempotency-Key replay of a creation or rotation answers ``secret: null`` (never stored).
"""

from __future__ import annotations

import re
from typing import Annotated

import msgspec
from aiohttp import web

from contracts.rpc import webhooks as rpc
from services.gateway.adapters.read_model import find_project
from services.gateway.deps import deps_of
from services.gateway.domain.errors import FieldInvalid
from services.gateway.domain.etag import accepted_versions, etag_for
from services.gateway.routes._upstream import ask, versioned_json
from services.gateway.routing import ADMIN_ONLY, RequestContext, Route
from shared.errors import NotFound
from shared.http import json_response

_TAG = "webhooks"
_ERRORS = (404, 502, 503, 504)
_COLLECTION = "/api/admin/webhooks"
_ONE = "/api/admin/webhooks/{id}"
_ROTATE = "/api/admin/webhooks/{id}/rotate-secret"
_WEBHOOK_ID = re.compile(r"wh_[0-9a-f]{32}")
_NO_STORE = {"Cache-Control": "no-store"}


class WebhookNotFound(NotFound):
    code, title = "webhook_not_found", "No such webhook subscription"


class RotateSecretBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``POST /api/admin/webhooks/{id}/rotate-secret`` (``{}`` for the defaults)."""

    # How long the previous secret keeps signing (0: stop at once; at most 7 days).
    grace_seconds: Annotated[int, msgspec.Meta(ge=0, le=7 * 24 * 3600)] = int(
        rpc.ROTATION_GRACE_DEFAULT.total_seconds()
    )
    # The new secret (generated when absent).
    secret: rpc.Secret | None = None


def _webhook_id(ctx: RequestContext) -> str:
    value = ctx.request.match_info["id"]
    if not _WEBHOOK_ID.fullmatch(value):
        raise WebhookNotFound(f"no webhook {value[:80]!r}")
    return value


def _if_match(ctx: RequestContext) -> list[int] | None:
    return accepted_versions(ctx.request.headers.get("If-Match"))


async def _project_id(ctx: RequestContext, ref: str | None) -> str | None:
    if ref is None:
        return None
    project = await find_project(deps_of(ctx).pool, ref)
    if project is None:
        raise FieldInvalid("project", f"no project {ref!r}", code="unknown_project")
    return project.id


def _with_secret(reply: rpc.WebhookSecretReply, *, status: int) -> web.Response:
    headers = {
        **_NO_STORE,
        "ETag": etag_for(reply.webhook.revision),
        "Location": f"{_COLLECTION}/{reply.webhook.id}",
    }
    return json_response(reply, status=status, headers=headers)


async def create_webhook(ctx: RequestContext) -> web.StreamResponse:
    body = ctx.body
    assert isinstance(body, rpc.WebhookBody)
    request = rpc.WebhookCreateRequest(project_id=await _project_id(ctx, body.project), body=body)
    reply = await ask(ctx, rpc.SERVICE, rpc.WEBHOOK_CREATE, request, rpc.WebhookSecretReply)
    return _with_secret(reply, status=201)


async def list_webhooks(ctx: RequestContext) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, rpc.WebhookListRequest)
    return json_response(await ask(ctx, rpc.SERVICE, rpc.WEBHOOK_LIST, query, rpc.WebhookPage))


async def get_webhook(ctx: RequestContext) -> web.StreamResponse:
    request = rpc.WebhookRequest(id=_webhook_id(ctx))
    view = await ask(ctx, rpc.SERVICE, rpc.WEBHOOK_GET, request, rpc.WebhookView)
    return versioned_json(ctx, view, view.revision)


async def update_webhook(ctx: RequestContext) -> web.StreamResponse:
    patch = ctx.body
    assert isinstance(patch, rpc.WebhookPatch)
    webhook_id = _webhook_id(ctx)
    project = patch.project if isinstance(patch.project, str) else None
    request = rpc.WebhookUpdateRequest(
        id=webhook_id,
        patch=patch,
        project_id=await _project_id(ctx, project),
        if_match=_if_match(ctx),
    )
    view = await ask(ctx, rpc.SERVICE, rpc.WEBHOOK_UPDATE, request, rpc.WebhookView)
    return json_response(view, headers={"ETag": etag_for(view.revision)})


async def delete_webhook(ctx: RequestContext) -> web.StreamResponse:
    request = rpc.WebhookRequest(id=_webhook_id(ctx), if_match=_if_match(ctx))
    await ask(ctx, rpc.SERVICE, rpc.WEBHOOK_DELETE, request, rpc.WebhookView)
    return web.Response(status=204)


async def rotate_secret(ctx: RequestContext) -> web.StreamResponse:
    body = ctx.body
    assert isinstance(body, RotateSecretBody)
    request = rpc.WebhookRotateRequest(
        id=_webhook_id(ctx), grace_seconds=body.grace_seconds, secret=body.secret
    )
    reply = await ask(ctx, rpc.SERVICE, rpc.WEBHOOK_ROTATE_SECRET, request, rpc.WebhookSecretReply)
    return _with_secret(reply, status=200)


_URL_RULES = (
    "422 invalid_webhook_url (shape: http or https, a host, no credentials, no fragment) or "
    "receiver_url_refused with its reason (address: the host resolves to a loopback, private, "
    "link-local or metadata address outside GATEHOUSE_OUTBOUND_ALLOW_CIDRS; unresolvable; "
    "scheme; credentials_in_url; malformed)"
)

ROUTES: list[Route] = [
    Route(
        method="POST",
        path=_COLLECTION,
        handler=create_webhook,
        roles=ADMIN_ONLY,
        summary="Create a webhook subscription: events (exact catalog names or <domain>.*), "
        "an optional project filter (id or slug), format standard | orbitalreg | slack | "
        "cloudevents, secret (generated when absent). The response carries the secret, shown "
        f"this once only (null on an Idempotency-Key replay). {_URL_RULES}; 422 "
        "unknown_event_type naming the event, invalid_webhook_secret, unknown_project",
        tag=_TAG,
        body=rpc.WebhookBody,
        response=rpc.WebhookSecretReply,
        response_status=201,
        errors=(422, 502, 503, 504),
        redact_on_replay=("secret",),
    ),
    Route(
        method="GET",
        path=_COLLECTION,
        handler=list_webhooks,
        roles=ADMIN_ONLY,
        summary="List webhook subscriptions in creation order (never their secrets)",
        tag=_TAG,
        query=rpc.WebhookListRequest,
        response=rpc.WebhookPage,
        errors=(422, 502, 503, 504),
    ),
    Route(
        method="GET",
        path=_ONE,
        handler=get_webhook,
        roles=ADMIN_ONLY,
        summary="A webhook subscription (never its secret), with its ETag; 404 webhook_not_found",
        tag=_TAG,
        response=rpc.WebhookView,
        errors=_ERRORS,
    ),
    Route(
        method="PATCH",
        path=_ONE,
        handler=update_webhook,
        roles=ADMIN_ONLY,
        summary="Change a webhook subscription: only the fields present (project: null removes "
        "the filter; enabled: true clears disabled_reason). If-Match: 412 "
        f"precondition_failed when it changed since. {_URL_RULES}; 422 unknown_event_type, "
        "invalid_webhook_secret (a Standard Webhooks format needs a whsec_ secret); 404 "
        "webhook_not_found",
        tag=_TAG,
        body=rpc.WebhookPatch,
        response=rpc.WebhookView,
        errors=(412, 422, *_ERRORS),
    ),
    Route(
        method="DELETE",
        path=_ONE,
        handler=delete_webhook,
        roles=ADMIN_ONLY,
        summary="Delete a webhook subscription: nothing more is delivered to it. If-Match: "
        "412 precondition_failed; 404 webhook_not_found",
        tag=_TAG,
        response_status=204,
        errors=(412, *_ERRORS),
    ),
    Route(
        method="POST",
        path=_ROTATE,
        handler=rotate_secret,
        roles=ADMIN_ONLY,
        summary="Rotate a webhook's secret: the response carries the new one, shown this once "
        "(null on an Idempotency-Key replay); the previous one keeps signing for grace_seconds "
        "(default 24 h), both signatures sent meanwhile. 422 invalid_webhook_secret; 404 "
        "webhook_not_found",
        tag=_TAG,
        body=RotateSecretBody,
        response=rpc.WebhookSecretReply,
        errors=(422, *_ERRORS),
        redact_on_replay=("secret",),
    ),
]
