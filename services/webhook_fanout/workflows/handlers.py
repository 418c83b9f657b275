"""``svc.webhook-fanout.workflow_*``: configure how a workflow trigger calls its workflow,
read it, and give its Standard Webhooks secret (rotating it).

Commands check everything first (a refused request publishes nothing), serialise on the
trigger (advisory lock), keep a new credential in ``subscription_secrets`` *before*
publishing ``webhook.workflow-configured`` (the event carries only its version), and answer
once the ``workflows`` projection applied it (read-your-writes).

A secret is shown once, in the answer that made it. The first time (nobody holds the
generated one) the previous secret stops signing at once; afterwards it keeps signing for
``grace_seconds``. A GitHub token is never shown at all.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

import asyncpg

from contracts.events.webhooks import WebhookWorkflowConfigured
from contracts.rpc import workflows as rpc
from services.webhook_fanout.domain import receivers
from services.webhook_fanout.domain.signing import GENERATED_KEY_BYTES, generate_secret
from services.webhook_fanout.workflows import store
from shared.bus import Bus
from shared.commands import advisory_locked, publish_visible
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.outbound import check_receiver_url
from shared.projection import ProjectionRunner
from shared.rpc import CallContext
from shared.settings import Settings

GITHUB_FORMATS = ("github_repository_dispatch", "github_workflow_dispatch")
CATCH_UP_SECONDS = 2.0


class EnvironmentNotFound(NotFound):
    code, title = "environment_not_found", "Release environment not found"


class BuildWorkflowNotConfigured(NotFound):
    code, title = "build_workflow_not_configured", "No build workflow is configured"


class WorkflowUsesToken(Conflict):
    code, title = "workflow_uses_github_token", "This workflow authenticates with a GitHub token"


def _invalid(field: str, message: str, code: str = "invalid_workflow_settings") -> ValidationFailed:
    return ValidationFailed(
        message, code=code, extra={"errors": [{"field": field, "message": message, "in": "body"}]}
    )


def view_of(t: store.Target) -> rpc.WorkflowView:
    return rpc.WorkflowView(
        id=t.id,
        kind=t.kind,  # type: ignore[arg-type]
        project_id=t.project_id,
        environment=t.environment,
        url=t.url,
        format=t.format,  # type: ignore[arg-type]
        ref=t.ref,
        dispatch_event_type=t.dispatch_event_type,
        has_github_token=t.format in GITHUB_FORMATS,
        secret_version=t.secret_version,
        previous_valid_until=t.previous_valid_until,
        updated_at=t.updated_at,
    )


def _new_whsec() -> str:
    return generate_secret(secrets.token_bytes(GENERATED_KEY_BYTES)).text


@dataclass
class WorkflowHandlers:
    pool: asyncpg.Pool
    bus: Bus
    runner: ProjectionRunner
    settings: Settings

    # ---- lookup ----------------------------------------------------------------------------
    async def _caught_up(self) -> None:
        """The environment may have been created a moment ago (release-decision answered
        once its own read model had it, not this one)."""
        # The last event of this projection's own subjects: the checkpoint never reaches
        # the stream's end when the newest events are of other subjects.
        last = await self.bus.last_sequence_of(self.runner.projection.subjects)
        try:
            await self.runner.wait_for(last, timeout=CATCH_UP_SECONDS)
        except TimeoutError:
            pass

    async def _find(
        self, ref: rpc.WorkflowRef, db: asyncpg.Pool | asyncpg.Connection
    ) -> store.Target | None:
        if ref.kind == "build":
            return await store.target(db, store.target_id("build", ref.project_id))
        if ref.environment is None:
            raise _invalid("environment", "a deployment workflow names its environment")
        found = await store.environment_target(db, ref.project_id, ref.environment)
        if found is None:
            await self._caught_up()
            found = await store.environment_target(db, ref.project_id, ref.environment)
        if found is None:
            raise EnvironmentNotFound(f"no environment {ref.environment[:80]!r}")
        return found

    def _id_of(self, ref: rpc.WorkflowRef, found: store.Target | None) -> str:
        if found is not None:
            return found.id
        return store.target_id("build", ref.project_id)

    # ---- read ------------------------------------------------------------------------------
    async def get(self, request: rpc.WorkflowGetRequest, _ctx: CallContext) -> rpc.WorkflowView:
        found = await self._find(request.workflow, self.pool)
        if found is None:
            raise BuildWorkflowNotConfigured("the project has no build workflow; PUT one first")
        return view_of(found)

    # ---- configure -------------------------------------------------------------------------
    async def configure(
        self, request: rpc.WorkflowConfigureRequest, ctx: CallContext
    ) -> rpc.WorkflowView:
        ref, settings = request.workflow, request.settings
        if ref.kind == "build":
            if request.url is None:
                raise _invalid("url", "the build workflow's url is required")
            try:
                receivers.check_receiver_url(request.url)
            except ValidationFailed as exc:
                raise _invalid("url", exc.detail, exc.code) from None
            await check_receiver_url(request.url, self.settings, field="$.url")
        if settings.format == "github_workflow_dispatch" and settings.ref is None:
            raise _invalid("ref", "a workflow_dispatch runs on a branch or tag: give its ref")
        found = await self._find(ref, self.pool)
        target_id = self._id_of(ref, found)
        async with advisory_locked(self.pool, f"workflow:{target_id}") as conn:
            found = await store.target(conn, target_id)
            was_github = found is not None and found.format in GITHUB_FORMATS
            version = found.secret_version if found is not None else 0
            now = dt.datetime.now(dt.UTC)
            credential: str | None = None
            if settings.format in GITHUB_FORMATS:
                if settings.github_token is None and not was_github:
                    raise _invalid("github_token", "a GitHub dispatch needs a token")
                credential = settings.github_token
            elif settings.github_token is not None:
                raise _invalid("github_token", "only the GitHub formats take a token")
            elif was_github or found is None:
                credential = _new_whsec()  # shown by workflow-secret, never held before
            if credential is not None:
                version += 1
                await store.keep_secret(
                    conn, target_id, version=version, secret=credential, at=now, replace=True
                )
            event = WebhookWorkflowConfigured(
                id=target_id,
                kind=ref.kind,
                project_id=ref.project_id,
                environment_id=found.environment_id if found is not None else None,
                url=request.url if ref.kind == "build" else None,
                format=settings.format,
                ref=settings.ref,
                dispatch_event_type=settings.dispatch_event_type,
                secret_version=version,
                previous_valid_until=(
                    now if credential is not None else found.previous_valid_until if found else None
                ),
            )
            await self._emit(event, ctx)
            updated = await store.target(conn, target_id)
        assert updated is not None
        return view_of(updated)

    # ---- secret ----------------------------------------------------------------------------
    async def secret(
        self, request: rpc.WorkflowSecretRequest, ctx: CallContext
    ) -> rpc.WorkflowSecretReply:
        ref = request.workflow
        found = await self._find(ref, self.pool)
        if found is None:
            raise BuildWorkflowNotConfigured("the project has no build workflow; PUT one first")
        async with advisory_locked(self.pool, f"workflow:{found.id}") as conn:
            current = await store.target(conn, found.id)
            assert current is not None
            if current.format in GITHUB_FORMATS:
                raise WorkflowUsesToken(
                    "a GitHub dispatch is authenticated by its token, not signed: PUT the "
                    "workflow with a new github_token to replace it"
                )
            now = dt.datetime.now(dt.UTC)
            shown = await store.shown_version(conn, current.id) == current.secret_version
            grace = dt.timedelta(seconds=request.body.grace_seconds if shown else 0)
            version = current.secret_version + 1
            text = _new_whsec()
            await store.keep_secret(
                conn, current.id, version=version, secret=text, at=now, replace=True
            )
            await self._emit(
                WebhookWorkflowConfigured(
                    id=current.id,
                    kind=ref.kind,
                    project_id=current.project_id,
                    environment_id=current.environment_id,
                    url=current.url if ref.kind == "build" else None,
                    format="standard",
                    ref=current.ref,
                    dispatch_event_type=current.dispatch_event_type,
                    secret_version=version,
                    previous_valid_until=now + grace,
                ),
                ctx,
            )
            await store.mark_shown(conn, current.id, version)
            updated = await store.target(conn, current.id)
        assert updated is not None
        return rpc.WorkflowSecretReply(workflow=view_of(updated), secret=text)

    async def _emit(self, payload: WebhookWorkflowConfigured, ctx: CallContext) -> int:
        return await publish_visible(
            self.bus,
            self.runner,
            payload,
            aggregate=f"webhook:{payload.id}",
            ctx=ctx,
            settings=self.settings,
        )
