"""``svc.webhook-fanout.webhook_*``: create, list, read, change, delete a webhook subscription
and rotate its secret.

Commands validate everything first (the URL's shape, then where its host resolves to; the
event patterns against the catalog; the secret), so a refused request publishes nothing.
They serialise on the subscription (advisory lock), keep a new secret in
``subscription_secrets`` *before* publishing (the event carries only its version), publish,
and answer once the subscriptions projection applied the event (read-your-writes). A PATCH
that changes nothing publishes nothing.

The secret is in exactly two answers: the creation and a rotation. A retry of either with
the same Idempotency-Key that finds the first attempt's event answers ``secret: null``, as
the API keys do: the secret was shown to the first answer only.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec

from contracts.envelope import EventPayload
from contracts.events.webhooks import (
    WebhookCreated,
    WebhookDeleted,
    WebhookSecretRotated,
    WebhookUpdated,
)
from contracts.rpc.webhooks import (
    WebhookCreateRequest,
    WebhookListRequest,
    WebhookPage,
    WebhookRequest,
    WebhookRotateRequest,
    WebhookSecretReply,
    WebhookUpdateRequest,
    WebhookView,
)
from services.webhook_fanout.domain import matching, receivers, signing
from services.webhook_fanout.domain.errors import InvalidWebhookSecret, WebhookNotFound
from services.webhook_fanout.subscriptions import store
from shared.bus import Bus
from shared.commands import advisory_locked, command_once, publish_visible
from shared.errors import Conflict, GatehouseError, PreconditionFailed, ValidationFailed
from shared.outbound import check_receiver_url
from shared.pagination import decode_cursor, encode_cursor
from shared.projection import ProjectionRunner
from shared.rpc import CallContext
from shared.settings import Settings

# Names webhook ids made for an Idempotency-Key command (uuid5): every attempt of one
# command makes the same subscription, so at most one secret is kept for it.
_IDS = uuid.UUID("5b0c3d1e-8f47-5a2b-9c61-0d4e7f3a8b15")


class WorkflowTriggerManaged(Conflict):
    code, title = "workflow_trigger_managed", "A workflow trigger is configured elsewhere"

    def __init__(self, webhook_id: str) -> None:
        super().__init__(
            f"{webhook_id} calls a release workflow: configure it under "
            "/api/releases/{project}/environments/{env}/workflow or …/build-workflow"
        )


class RevisionMismatch(PreconditionFailed):
    def __init__(self, current: int) -> None:
        super().__init__(
            "If-Match does not match the current ETag; read the webhook again",
            extra={"current_etag": f'"v{current}"'},
        )


def _at_field(exc: GatehouseError, field: str) -> GatehouseError:
    """``exc`` naming the body field it is about (domain errors do not know the field)."""
    if "errors" not in exc.extra:
        exc.extra["errors"] = [{"field": field, "message": exc.detail, "in": "body"}]
    return exc


def new_webhook_id(command_id: str) -> str:
    if command_id:
        return "wh_" + uuid.uuid5(_IDS, command_id).hex
    return "wh_" + uuid.uuid4().hex


def view_of(row: store.SubscriptionRow) -> WebhookView:
    return WebhookView(
        id=row.id,
        url=row.url,
        events=list(row.events),
        project_id=row.project_id,
        description=row.description,
        enabled=row.enabled,
        format=row.format,  # type: ignore[arg-type]
        disabled_reason=row.disabled_reason,  # type: ignore[arg-type]
        secret_version=row.secret_version,
        created_at=row.created_at,
        updated_at=row.updated_at,
        revision=row.revision,
    )


def _secret_scheme(format_: str) -> signing.SecretScheme:
    return "orbitalreg" if format_ == "orbitalreg" else "standard"


def new_secret(given: str | None, *, format_: str) -> signing.WebhookSecret:
    """The secret given (checked for the format) or a generated ``whsec_`` one."""
    if given is None:
        return signing.generate_secret(secrets.token_bytes(signing.GENERATED_KEY_BYTES))
    try:
        return signing.parse_secret(given, scheme=_secret_scheme(format_))
    except InvalidWebhookSecret as exc:
        raise _at_field(exc, "$.secret") from None


@dataclass
class SubscriptionHandlers:
    pool: asyncpg.Pool
    bus: Bus
    runner: ProjectionRunner
    settings: Settings

    # ---- checks ----------------------------------------------------------------------------
    async def _check_url(self, url: str) -> None:
        try:
            receivers.check_receiver_url(url)
        except ValidationFailed as exc:
            raise _at_field(exc, "$.url") from None
        await check_receiver_url(url, self.settings, field="$.url")

    @staticmethod
    def _check_events(events: list[str]) -> list[str]:
        try:
            return list(matching.check_patterns(events))
        except ValidationFailed as exc:
            raise _at_field(exc, "$.events") from None

    @staticmethod
    def _project(named: str | None, resolved: str | None) -> str | None:
        if named is not None and resolved is None:
            raise ValidationFailed(
                f"no project {named!r}",
                code="unknown_project",
                extra={"errors": [{"field": "$.project", "message": "no such project"}]},
            )
        return resolved if named is not None else None

    # ---- create ----------------------------------------------------------------------------
    async def create(self, request: WebhookCreateRequest, ctx: CallContext) -> WebhookSecretReply:
        return await command_once(
            ctx,
            bus=self.bus,
            runner=self.runner,
            settings=self.settings,
            first=lambda: self._create(request, ctx),
            again=lambda applied: self._reply(applied.aggregate_id, secret=None),
        )

    async def _create(self, request: WebhookCreateRequest, ctx: CallContext) -> WebhookSecretReply:
        body = request.body
        await self._check_url(body.url)
        events = self._check_events(list(body.events))
        project_id = self._project(body.project, request.project_id)
        secret = new_secret(body.secret, format_=body.format)
        webhook_id = new_webhook_id(ctx.command_id)
        await store.keep_first_secret(
            self.pool, webhook_id, secret=secret.text, at=dt.datetime.now(dt.UTC)
        )
        await self._emit(
            WebhookCreated(
                id=webhook_id,
                url=body.url,
                events=events,
                project_id=project_id,
                description=body.description,
                enabled=body.enabled,
                format=body.format,
                secret_version=1,
            ),
            webhook_id,
            ctx,
        )
        return await self._reply(webhook_id, secret=secret.text)

    async def _reply(self, webhook_id: str, *, secret: str | None) -> WebhookSecretReply:
        return WebhookSecretReply(webhook=await self._view(webhook_id), secret=secret)

    # ---- reads -----------------------------------------------------------------------------
    async def get(self, request: WebhookRequest, _ctx: CallContext) -> WebhookView:
        return await self._view(request.id)

    async def list(self, request: WebhookListRequest, _ctx: CallContext) -> WebhookPage:
        after = int(decode_cursor(request.cursor, kinds=(int,))[0]) if request.cursor else None
        rows = await store.list_subscriptions(self.pool, after_seq=after, limit=request.limit + 1)
        page = rows[: request.limit]
        cursor = encode_cursor([page[-1].created_seq]) if len(rows) > request.limit else None
        return WebhookPage(items=[view_of(row) for row in page], next_cursor=cursor)

    async def _view(self, webhook_id: str, *, db: store.Queryable | None = None) -> WebhookView:
        row = await store.subscription(db or self.pool, webhook_id)
        if row is None:
            raise WebhookNotFound(f"no webhook {webhook_id!r}")
        return view_of(row)

    async def _row(self, db: store.Queryable, webhook_id: str) -> store.SubscriptionRow:
        row = await store.subscription(db, webhook_id)
        if row is None:
            raise WebhookNotFound(f"no webhook {webhook_id!r}")
        if await store.is_workflow_trigger(db, webhook_id):
            raise WorkflowTriggerManaged(webhook_id)
        return row

    # ---- update ----------------------------------------------------------------------------
    async def update(self, request: WebhookUpdateRequest, ctx: CallContext) -> WebhookView:
        patch = request.patch
        async with advisory_locked(self.pool, f"webhook:{request.id}") as conn:
            row = await self._row(conn, request.id)
            if request.if_match is not None and row.revision not in request.if_match:
                raise RevisionMismatch(row.revision)
            changes: dict[str, Any] = {}
            if patch.url is not msgspec.UNSET:
                await self._check_url(patch.url)
                if patch.url != row.url:
                    changes["url"] = patch.url
            if patch.events is not msgspec.UNSET:
                events = self._check_events(list(patch.events))
                if events != row.events:
                    changes["events"] = events
            if patch.project is not msgspec.UNSET:
                project_id = self._project(patch.project, request.project_id)
                if project_id != row.project_id:
                    changes["project_id"] = project_id
            for name in ("description", "enabled", "format"):
                value = getattr(patch, name)
                if value is not msgspec.UNSET and value != getattr(row, name):
                    changes[name] = value
            if "format" in changes:
                await self._check_secrets_sign(conn, row, changes["format"])
            if changes:
                await self._emit(WebhookUpdated(id=row.id, **changes), row.id, ctx)
            return await self._view(row.id, db=conn)

    async def _check_secrets_sign(
        self, conn: asyncpg.Connection, row: store.SubscriptionRow, format_: str
    ) -> None:
        """A Standard Webhooks format needs ``whsec_`` secrets: every one still signing."""
        if _secret_scheme(format_) != "standard":
            return
        for text in await store.signing_secrets(conn, row.id, dt.datetime.now(dt.UTC)):
            try:
                signing.parse_secret(text, scheme="standard")
            except InvalidWebhookSecret:
                raise _at_field(
                    InvalidWebhookSecret(
                        f"format {format_!r} signs with a whsec_ secret and this webhook's is"
                        " not one: rotate the secret (giving or generating a whsec_ one, grace"
                        " 0 s) first"
                    ),
                    "$.format",
                ) from None

    # ---- delete ----------------------------------------------------------------------------
    async def delete(self, request: WebhookRequest, ctx: CallContext) -> WebhookView:
        async with advisory_locked(self.pool, f"webhook:{request.id}") as conn:
            row = await self._row(conn, request.id)
            if request.if_match is not None and row.revision not in request.if_match:
                raise RevisionMismatch(row.revision)
            await self._emit(WebhookDeleted(id=row.id), row.id, ctx)
        return view_of(row)

    # ---- rotate ----------------------------------------------------------------------------
    async def rotate(self, request: WebhookRotateRequest, ctx: CallContext) -> WebhookSecretReply:
        return await command_once(
            ctx,
            bus=self.bus,
            runner=self.runner,
            settings=self.settings,
            first=lambda: self._rotate(request, ctx),
            again=lambda applied: self._reply(applied.aggregate_id, secret=None),
        )

    async def _rotate(self, request: WebhookRotateRequest, ctx: CallContext) -> WebhookSecretReply:
        async with advisory_locked(self.pool, f"webhook:{request.id}") as conn:
            row = await self._row(conn, request.id)
            secret = new_secret(request.secret, format_=row.format)
            now = dt.datetime.now(dt.UTC)
            version = row.secret_version + 1
            await store.store_secret(conn, row.id, version=version, secret=secret.text, at=now)
            await self._emit(
                WebhookSecretRotated(
                    id=row.id,
                    secret_version=version,
                    previous_valid_until=now + dt.timedelta(seconds=request.grace_seconds),
                ),
                row.id,
                ctx,
            )
            return WebhookSecretReply(webhook=await self._view(row.id, db=conn), secret=secret.text)

    async def _emit(self, payload: EventPayload, webhook_id: str, ctx: CallContext) -> int:
        return await publish_visible(
            self.bus,
            self.runner,
            payload,
            aggregate=f"webhook:{webhook_id}",
            ctx=ctx,
            settings=self.settings,
        )
