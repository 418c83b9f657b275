"""Inbound GitHub and GitLab webhooks (public: they carry their own signature or token).

* ``POST /api/v1/releases/github-webhook``: ``push``, ``pull_request``, ``check_run``,
  ``ping``, authenticated by ``X-Hub-Signature-256``.
* ``POST /api/v1/releases/gitlab-webhook``: ``Push Hook``, ``Merge Request Hook``,
  authenticated by ``X-Gitlab-Token``.

The gateway reads the body (at most ``GATEHOUSE_WEBHOOK_MAX_BODY_BYTES``, 413 above) and
forwards it untouched, with the delivery headers, to the release-decision service, which
holds the secrets, checks them against these exact bytes and records the delivery once.
"""

from __future__ import annotations

import asyncio
import zlib

from aiohttp import web

from contracts.rpc import scm_webhooks as rpc
from services.gateway.deps import deps_of
from services.gateway.routes._upstream import ask
from services.gateway.routing import RequestContext, Route, Upload
from shared.errors import PayloadTooLarge
from shared.http import json_response
from shared.settings import Settings

GITHUB_TYPES = ("application/json", "application/x-www-form-urlencoded")
GITLAB_TYPES = ("application/json",)
# Compressing a large body off the event loop (zlib releases the GIL).
COMPRESS_IN_THREAD_BYTES = 64 * 1024
# Room for the request's other fields in the bus message.
RPC_OVERHEAD_BYTES = 4096
_ERRORS = (400, 401, 413, 415, 422, 503, 504)


def webhook_limit(settings: Settings) -> int:
    return settings.webhook_max_body_bytes


async def _compressed(ctx: RequestContext, upload: Upload) -> bytes:
    if len(upload.data) > COMPRESS_IN_THREAD_BYTES:
        data = await asyncio.to_thread(zlib.compress, upload.data, 6)
    else:
        data = zlib.compress(upload.data, 6)
    # Base64 in the JSON request; a body that does not compress may not fit a bus message.
    limit = deps_of(ctx).runtime.bus.nc.max_payload - RPC_OVERHEAD_BYTES
    if (len(data) + 2) // 3 * 4 > limit:
        raise PayloadTooLarge("the webhook body is too large to forward (it does not compress)")
    return data


def _answer(reply: rpc.WebhookReply) -> web.StreamResponse:
    return json_response(reply, status=202 if reply.status == "ignored" else 200)


async def github_webhook(ctx: RequestContext) -> web.StreamResponse:
    upload = ctx.body
    assert isinstance(upload, Upload)
    headers = ctx.request.headers
    request = rpc.GithubWebhookRequest(
        event=headers.get("X-GitHub-Event"),
        delivery_id=headers.get("X-GitHub-Delivery"),
        signature=headers.get("X-Hub-Signature-256"),
        media_type=upload.media_type,
        body_zlib=await _compressed(ctx, upload),
    )
    return _answer(await ask(ctx, rpc.SERVICE, rpc.GITHUB_WEBHOOK, request, rpc.WebhookReply))


async def gitlab_webhook(ctx: RequestContext) -> web.StreamResponse:
    upload = ctx.body
    assert isinstance(upload, Upload)
    headers = ctx.request.headers
    request = rpc.GitlabWebhookRequest(
        event=headers.get("X-Gitlab-Event"),
        delivery_id=headers.get("X-Gitlab-Event-UUID"),
        token=headers.get("X-Gitlab-Token"),
        body_zlib=await _compressed(ctx, upload),
    )
    return _answer(await ask(ctx, rpc.SERVICE, rpc.GITLAB_WEBHOOK, request, rpc.WebhookReply))


ROUTES = [
    Route(
        method="POST",
        path="/api/v1/releases/github-webhook",
        handler=github_webhook,
        roles=None,
        summary="GitHub webhook (push, pull_request, check_run, ping), authenticated by "
        "X-Hub-Signature-256 (401 invalid_signature); X-GitHub-Delivery is handled once "
        "(a redelivery answers duplicate: true). Pull requests get the head commit's "
        "decision as a check run and one comment, updated when the decision changes",
        tag="releases",
        upload=GITHUB_TYPES,
        upload_limit=webhook_limit,
        response=rpc.WebhookReply,
        errors=_ERRORS,
    ),
    Route(
        method="POST",
        path="/api/v1/releases/gitlab-webhook",
        handler=gitlab_webhook,
        roles=None,
        summary="GitLab webhook (Push Hook, Merge Request Hook), authenticated by "
        "X-Gitlab-Token (401 invalid_token); X-Gitlab-Event-UUID is handled once",
        tag="releases",
        upload=GITLAB_TYPES,
        upload_limit=webhook_limit,
        response=rpc.WebhookReply,
        errors=_ERRORS,
    ),
]
