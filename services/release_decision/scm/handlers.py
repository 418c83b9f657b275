"""``svc.release-decision.github_webhook`` / ``gitlab_webhook``: one delivery, checked and
recorded once.

The signature (GitHub) or token (GitLab) is checked first, against the body exactly as it
arrived: a delivery that fails it records nothing. A delivery id seen before answers
``duplicate`` and publishes nothing (a per-delivery advisory lock makes two concurrent
copies of one delivery answer one ``recorded``, one ``duplicate``). So does a GitHub body
seen before under another delivery id: the id header is not signed, and GitHub redelivers
under the same id, so that is a captured delivery replayed (an old push would move the
branch's head back). Otherwise its events are published with ids derived from the
delivery, ``scm.delivery-received`` last, and the reply waits until the scm projection has
applied them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import zlib
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import asyncpg

from contracts.events.scm import DeliveryReceived, Provider
from contracts.rpc.scm_webhooks import GithubWebhookRequest, GitlabWebhookRequest, WebhookReply
from services.release_decision.scm import store
from services.release_decision.scm.domain.auth import github_signature_valid, gitlab_token_valid
from services.release_decision.scm.domain.deliveries import Reading, checked
from services.release_decision.scm.domain.github import read_github
from services.release_decision.scm.domain.gitlab import read_gitlab
from services.release_decision.scm.errors import (
    BadTransport,
    InvalidSignature,
    InvalidToken,
    MissingHeader,
)
from services.release_decision.scm.ids import delivery_event_id
from services.release_decision.scm.metrics import DELIVERIES
from shared.bus import Bus
from shared.commands import advisory_locked, wait_visible
from shared.db import advisory_key
from shared.errors import PayloadTooLarge
from shared.logging import get_logger
from shared.projection import ProjectionRunner
from shared.rpc import CallContext
from shared.settings import Settings

log = get_logger(__name__)

DELIVERY_ID_MAX = 128
EVENT_MAX = 100
# Share of the RPC deadline spent waiting for the projection (the gateway waits the rest).
CATCH_UP_SHARE = 0.8


def inflate(data: bytes, *, max_bytes: int) -> bytes:
    """The body the gateway compressed, at most ``max_bytes`` (413 above)."""
    inflater = zlib.decompressobj()
    try:
        body = inflater.decompress(data, max_bytes + 1)
    except zlib.error as exc:
        raise BadTransport(f"body_zlib is not zlib data: {exc}") from exc
    if len(body) > max_bytes or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"the webhook body exceeds the limit of {max_bytes} bytes")
    return body


def _header(value: str | None, name: str, *, max_length: int) -> str:
    value = (value or "").strip()
    if not value or len(value) > max_length:
        raise MissingHeader(f"{name} is missing or longer than {max_length} characters")
    return value


@dataclass
class WebhookHandlers:
    pool: asyncpg.Pool
    bus: Bus
    runner: ProjectionRunner
    settings: Settings

    async def github(self, request: GithubWebhookRequest, ctx: CallContext) -> WebhookReply:
        body = inflate(request.body_zlib, max_bytes=self.settings.webhook_max_body_bytes)
        if not github_signature_valid(self.settings.github_webhook_secret, body, request.signature):
            DELIVERIES.labels("github", "unauthenticated").inc()
            raise InvalidSignature(
                "X-Hub-Signature-256 must be the HMAC-SHA256 of the body with the webhook secret"
            )
        event = _header(request.event, "X-GitHub-Event", max_length=EVENT_MAX)
        delivery_id = _header(request.delivery_id, "X-GitHub-Delivery", max_length=DELIVERY_ID_MAX)
        media_type = request.media_type
        return await self._deliver(
            "github",
            event,
            delivery_id,
            body,
            lambda now: read_github(
                event, body, media_type=media_type, delivery_id=delivery_id, now=now
            ),
            ctx,
        )

    async def gitlab(self, request: GitlabWebhookRequest, ctx: CallContext) -> WebhookReply:
        body = inflate(request.body_zlib, max_bytes=self.settings.webhook_max_body_bytes)
        if not gitlab_token_valid(self.settings.gitlab_webhook_token, request.token):
            DELIVERIES.labels("gitlab", "unauthenticated").inc()
            raise InvalidToken("X-Gitlab-Token must be the configured webhook token")
        event = _header(request.event, "X-Gitlab-Event", max_length=EVENT_MAX)
        delivery_id = _header(
            request.delivery_id, "X-Gitlab-Event-UUID", max_length=DELIVERY_ID_MAX
        )
        return await self._deliver(
            "gitlab",
            event,
            delivery_id,
            body,
            lambda now: read_gitlab(event, body, delivery_id=delivery_id, now=now),
            ctx,
        )

    async def _deliver(
        self,
        provider: Provider,
        event: str,
        delivery_id: str,
        body: bytes,
        read: Callable[[dt.datetime], Reading],
        ctx: CallContext,
    ) -> WebhookReply:
        digest = hashlib.sha256(body).hexdigest()
        async with self._locked(f"release_decision.scm:delivery:{provider}:{delivery_id}") as conn:
            # Then the body's lock, on the same connection (always in this order): copies of
            # one body under different ids are handled one at a time as well.
            body_key = advisory_key(f"release_decision.scm:body:{provider}:{digest}")
            await conn.execute("SELECT pg_advisory_lock($1)", body_key)
            try:
                return await self._deliver_locked(provider, event, delivery_id, digest, read, ctx)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", body_key)

    async def _deliver_locked(
        self,
        provider: Provider,
        event: str,
        delivery_id: str,
        digest: str,
        read: Callable[[dt.datetime], Reading],
        ctx: CallContext,
    ) -> WebhookReply:
        seen = await store.delivery(self.pool, provider, delivery_id)
        reason = None
        if seen is None and provider == "github":
            # GitHub only: its bodies carry the times of the change (pushed_at, updated_at),
            # so two real events never share one. Two GitLab pushes of the same commits to
            # one branch (a branch moved away and back) have identical bodies.
            seen = await store.delivery_of_body(self.pool, provider, digest)
            if seen is not None:
                reason = f"the same body was delivered before as {seen['delivery_id']}"
        if seen is not None:
            DELIVERIES.labels(provider, "duplicate").inc()
            return WebhookReply(
                status="duplicate",
                duplicate=True,
                delivery_id=delivery_id,
                event=seen["event"],
                action=seen["action"],
                reason=reason,
                published=0,
            )
        now = dt.datetime.now(dt.UTC)
        reading = checked(read(now))  # a payload error raises here: nothing is published
        actor = f"webhook:{provider}"
        aggregate = f"repo:{reading.repo}" if reading.repo else f"delivery:{delivery_id}"
        for index, payload in enumerate(reading.events):
            await self.bus.publish(
                payload,
                aggregate=aggregate,
                actor=actor,
                correlation_id=ctx.request_id or None,
                event_id=delivery_event_id(provider, delivery_id, index),
                occurred_at=now,
            )
        _, seq = await self.bus.publish(
            DeliveryReceived(
                provider=provider,
                delivery_id=delivery_id,
                event=event,
                action=reading.action,
                repo=reading.repo,
                outcome=reading.outcome,
                reason=reading.reason,
                published=len(reading.events),
                received_at=now,
                body_digest=digest,
            ),
            aggregate=aggregate,
            actor=actor,
            correlation_id=ctx.request_id or None,
            event_id=delivery_event_id(provider, delivery_id, len(reading.events)),
            occurred_at=now,
        )
        await wait_visible(self.runner, seq, settings=self.settings, share=CATCH_UP_SHARE)
        DELIVERIES.labels(provider, reading.outcome).inc()
        log.info(
            "webhook_recorded",
            provider=provider,
            delivery_id=delivery_id,
            webhook_event=event,
            outcome=reading.outcome,
            published=len(reading.events),
        )
        return WebhookReply(
            status=reading.outcome,
            delivery_id=delivery_id,
            event=event,
            action=reading.action,
            reason=reading.reason,
            published=len(reading.events),
        )

    def _locked(self, name: str) -> AbstractAsyncContextManager[asyncpg.Connection]:
        return advisory_locked(self.pool, name)
