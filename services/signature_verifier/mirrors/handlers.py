"""``svc.signature-verifier.mirror_*``: configure, read, drop and sync a repo's mirror.

Commands serialise on the repo (advisory lock), validate everything first (the clone URL
with its host resolved, the credential's name, the branch name) so a refused request
publishes nothing, publish, and answer once the mirrors projection applied the event
(read-your-writes). A PUT that changes nothing publishes nothing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg
import pygit2

from contracts.events.signatures import MirrorConfigured, MirrorRemoved, MirrorSyncRequested
from contracts.rpc.signatures import (
    MirrorPutReply,
    MirrorPutRequest,
    MirrorRequest,
    MirrorSyncReply,
    MirrorView,
)
from services.signature_verifier.mirrors import git, store
from services.signature_verifier.mirrors.domain.view import fetch_status, mirror_view
from services.signature_verifier.mirrors.paths import mirror_path
from shared.bus import Bus
from shared.commands import advisory_locked, command_once, publish_visible
from shared.errors import NotFound, ValidationFailed
from shared.outbound import check_clone_url, parse_credentials
from shared.projection import ProjectionRunner
from shared.rpc import CallContext
from shared.settings import Settings


class MirrorNotFound(NotFound):
    code, title = "mirror_not_found", "The repository has no git mirror"


def _invalid(field: str, message: str, *, code: str) -> ValidationFailed:
    return ValidationFailed(
        f"{field}: {message}",
        code=code,
        extra={"errors": [{"field": field, "message": message, "in": "body"}]},
    )


@dataclass
class MirrorHandlers:
    pool: asyncpg.Pool
    bus: Bus
    runner: ProjectionRunner
    settings: Settings

    async def put(self, request: MirrorPutRequest, ctx: CallContext) -> MirrorPutReply:
        body, key = request.mirror, request.repo.lower()
        if body.default_branch is not None and not pygit2.reference_is_valid_name(
            f"refs/heads/{body.default_branch}"
        ):
            raise _invalid(
                "$.default_branch", "is not a valid branch name", code="invalid_branch_name"
            )
        if body.credential is not None:
            if body.credential not in parse_credentials(self.settings.git_credentials):
                raise _invalid(
                    "$.credential",
                    f"no credential {body.credential!r} in GATEHOUSE_GIT_CREDENTIALS",
                    code="credential_not_found",
                )
        target = await check_clone_url(body.clone_url, self.settings)
        if body.credential is not None and target.kind != "https":
            raise _invalid(
                "$.credential",
                "a credential (a token) applies to https URLs; ssh uses the service's agent",
                code="credential_not_applicable",
            )
        async with advisory_locked(self.pool, f"mirror:{key}") as conn:
            current = await store.mirror(conn, key)
            unchanged = current is not None and current.same_config(
                project_id=request.project_id,
                clone_url=body.clone_url,
                default_branch=body.default_branch,
                credential=body.credential,
            )
            if not unchanged:
                await publish_visible(
                    self.bus,
                    self.runner,
                    MirrorConfigured(
                        repo=request.repo,
                        project_id=request.project_id,
                        clone_url=body.clone_url,
                        default_branch=body.default_branch,
                        credential=body.credential,
                    ),
                    aggregate=f"repo:{key}",
                    ctx=ctx,
                    settings=self.settings,
                )
        return MirrorPutReply(mirror=await self._view(key), created=current is None)

    async def get(self, request: MirrorRequest, _ctx: CallContext) -> MirrorView:
        return await self._view(request.repo.lower())

    async def delete(self, request: MirrorRequest, ctx: CallContext) -> MirrorView:
        key = request.repo.lower()
        async with advisory_locked(self.pool, f"mirror:{key}") as conn:
            view = await self._view(key, db=conn)
            await publish_visible(
                self.bus,
                self.runner,
                MirrorRemoved(repo=request.repo),
                aggregate=f"repo:{key}",
                ctx=ctx,
                settings=self.settings,
            )
            # The row is gone, so no fetch starts; one running now drops what it wrote.
            await asyncio.to_thread(git.remove_mirror, mirror_path(self.settings, request.repo))
            await store.forget_status(conn, key)
        return view

    async def sync(self, request: MirrorRequest, ctx: CallContext) -> MirrorSyncReply:
        return await command_once(
            ctx,
            bus=self.bus,
            runner=self.runner,
            settings=self.settings,
            first=lambda: self._sync(request, ctx),
            again=lambda _applied: self._sync_reply(request.repo.lower()),
        )

    async def _sync(self, request: MirrorRequest, ctx: CallContext) -> MirrorSyncReply:
        key = request.repo.lower()
        if await store.mirror(self.pool, key) is None:
            raise MirrorNotFound(f"{request.repo} has no git mirror")
        await publish_visible(
            self.bus,
            self.runner,
            MirrorSyncRequested(repo=request.repo),
            aggregate=f"repo:{key}",
            ctx=ctx,
            settings=self.settings,
        )
        return await self._sync_reply(key)

    async def _sync_reply(self, key: str) -> MirrorSyncReply:
        row = await store.mirror(self.pool, key)
        if row is None:
            raise MirrorNotFound(f"{key} has no git mirror")
        status = await store.status(self.pool, key)
        queued = await store.has_pending_fetch(self.pool, key)
        return MirrorSyncReply(repo=row.repo, status=fetch_status(status, queued=queued))

    async def _view(self, key: str, *, db: store.Queryable | None = None) -> MirrorView:
        db = db or self.pool
        row = await store.mirror(db, key)
        if row is None:
            raise MirrorNotFound(f"{key} has no git mirror")
        status = await store.status(db, key)
        return mirror_view(row, status, queued=await store.has_pending_fetch(db, key))
