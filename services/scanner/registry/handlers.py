"""``svc.scanner.repository_*``: registry repositories, and what the registry's handlers
share (resolving a repository, publishing visibly, the per-repository lock).

Commands serialise on their aggregate with an advisory lock — everything that changes a
repository's artifacts or quotas on ``registry-repo:<id>``, so uploads, deletions and quota
changes of one repository run one at a time and the usage read under the lock is current —
check ``If-Match``, publish one event and answer once the registry projection has applied
it (read-your-writes). A refused command publishes nothing (a refused upload over quota
publishes ``quota.exceeded`` only).
"""

from __future__ import annotations

import uuid
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec

from contracts.envelope import EventPayload
from contracts.events.registry import RepositoryCreated, RepositoryDeleted, RepositoryUpdated
from contracts.rpc.registry import (
    Repository,
    RepositoryCreateRequest,
    RepositoryDeleteRequest,
    RepositoryListRequest,
    RepositoryPage,
    RepositoryRef,
    RepositoryUpdateRequest,
)
from services.scanner.registry import store
from services.scanner.registry.domain import FieldProblem
from services.scanner.registry.errors import (
    RepositoryNotFound,
    RepositorySlugTaken,
    check_conditions,
    invalid,
)
from shared.bus import Bus
from shared.commands import advisory_locked, command_once, publish_visible
from shared.pagination import seq_cursor, seq_page
from shared.projection import ProjectionRunner
from shared.rpc import CallContext
from shared.settings import Settings

# Names the ids made for an Idempotency-Key command (uuid5): every attempt of one command
# makes the same resource.
_IDS = uuid.UUID("6f1d2c3b-4a5e-5f60-8b7c-9d0e1f2a3b4c")


def new_hex(command_id: str, kind: str) -> str:
    if command_id:
        return uuid.uuid5(_IDS, f"{kind}:{command_id}").hex
    return uuid.uuid4().hex


def repo_lock(repo_id: str) -> str:
    return f"registry-repo:{repo_id}"


@dataclass
class RegistryBase:
    pool: asyncpg.Pool
    bus: Bus
    runner: ProjectionRunner
    settings: Settings

    async def _emit(self, payload: EventPayload, *, aggregate: str, ctx: CallContext) -> int:
        return await publish_visible(
            self.bus, self.runner, payload, aggregate=aggregate, ctx=ctx, settings=self.settings
        )

    def _locked(self, name: str) -> AbstractAsyncContextManager[asyncpg.Connection]:
        return advisory_locked(self.pool, name)

    async def _once(self, ctx: CallContext, first: Any, again: Any) -> Any:
        return await command_once(
            ctx, bus=self.bus, runner=self.runner, settings=self.settings, first=first, again=again
        )

    async def _resolve(self, ref: RepositoryRef, db: store.Queryable | None = None) -> Repository:
        """The repository ``ref`` names: by id, or by (project id, slug)."""
        db = db or self.pool
        if ref.id is not None:
            found = await store.repository_by_id(db, ref.id)
            named = ref.id
        elif ref.project_id is not None and ref.slug is not None:
            found = await store.repository_by_slug(db, ref.project_id, ref.slug)
            named = f"{ref.project_id}/{ref.slug}"
        else:
            raise invalid(
                [FieldProblem("$.repo", "name the repository by id, or by project_id and slug")]
            )
        if found is None:
            raise RepositoryNotFound(f"no repository {named!r}")
        return found

    async def _repository(self, repo_id: str, db: store.Queryable | None = None) -> Repository:
        return await self._resolve(RepositoryRef(id=repo_id), db)


def changed_fields(patch: Any, current: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """The fields of ``names`` that ``patch`` sets (not UNSET) to other values than
    ``current`` has: what an update event carries (nothing: no event)."""
    return {
        name: value
        for name in names
        if (value := getattr(patch, name)) is not msgspec.UNSET and value != getattr(current, name)
    }


@dataclass
class RepositoryHandlers(RegistryBase):
    async def create(self, request: RepositoryCreateRequest, ctx: CallContext) -> Repository:
        return await self._once(  # type: ignore[no-any-return]
            ctx,
            lambda: self._create(request, ctx),
            lambda applied: self._repository(applied.aggregate_id),
        )

    async def _create(self, request: RepositoryCreateRequest, ctx: CallContext) -> Repository:
        body = request.body
        repo_id = "repo_" + new_hex(ctx.command_id, "repository")
        async with self._locked(f"registry-slug:{body.project_id}:{body.slug}") as conn:
            if await store.repository_by_slug(conn, body.project_id, body.slug) is not None:
                raise RepositorySlugTaken(
                    f"the project already has a repository {body.slug!r}",
                    extra={"errors": [{"field": "$.slug", "message": "taken", "in": "body"}]},
                )
            await self._emit(
                RepositoryCreated(
                    id=repo_id,
                    project_id=body.project_id,
                    slug=body.slug,
                    format=body.format,
                    visibility=body.visibility,
                    quarantine_new=body.quarantine_new,
                    description=body.description,
                    quota_bytes=body.quota_bytes,
                    quota_artifacts=body.quota_artifacts,
                ),
                aggregate=f"repository:{repo_id}",
                ctx=ctx,
            )
        return await self._repository(repo_id)

    async def list(self, request: RepositoryListRequest, _ctx: CallContext) -> RepositoryPage:
        after = seq_cursor(request.cursor)
        rows = await store.list_repositories(
            self.pool,
            project_ids=request.project_ids,
            slug=request.slug,
            after_seq=after,
            limit=request.limit + 1,
        )
        items, cursor = seq_page(rows, request.limit)
        return RepositoryPage(items=items, next_cursor=cursor)

    async def get(self, request: RepositoryRef, _ctx: CallContext) -> Repository:
        return await self._resolve(request)

    async def update(self, request: RepositoryUpdateRequest, ctx: CallContext) -> Repository:
        async with self._locked(repo_lock(request.id)) as conn:
            current = await self._repository(request.id, conn)
            check_conditions(current.revision, request, what="repository")
            changes = changed_fields(request.patch, current, store.REPO_PATCHABLE)
            if changes:
                await self._emit(
                    RepositoryUpdated(id=current.id, **changes),
                    aggregate=f"repository:{current.id}",
                    ctx=ctx,
                )
            return await self._repository(current.id, conn)

    async def delete(self, request: RepositoryDeleteRequest, ctx: CallContext) -> Repository:
        async with self._locked(repo_lock(request.id)) as conn:
            current = await self._repository(request.id, conn)
            check_conditions(current.revision, request, what="repository")
            await self._emit(
                RepositoryDeleted(id=current.id), aggregate=f"repository:{current.id}", ctx=ctx
            )
        return current
