"""``svc.scanner.block_*`` and ``quarantine_*``: security blocks and the quarantine.

A block names exactly one of a purl (optionally with a ``vers:`` range), a digest or a
name pattern; it is checked whole before anything is published (422 naming every field at
fault). Its ``hits`` come from ``block.hit`` events the gateway publishes.

The quarantine is the artifacts uploaded to a ``quarantine_new`` repository and not yet
released: release publishes ``artifact.quarantine-released``, reject deletes the artifact
(``artifact.deleted``, reason ``quarantine_rejected``); either on an artifact that is not
quarantined is a 409 ``not_quarantined``. Both run under the repository's lock, as every
change of its artifacts does.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from contracts.events.registry import (
    ArtifactDeleted,
    ArtifactQuarantineReleased,
    BlockCreated,
    BlockDeleted,
    BlockUpdated,
)
from contracts.rpc.registry import (
    Artifact,
    ArtifactPage,
    Block,
    BlockDeleteRequest,
    BlockListRequest,
    BlockPage,
    BlockRequest,
    BlockUpdateRequest,
    QuarantineDecisionRequest,
    QuarantineListRequest,
)
from contracts.rpc.registry import BlockBody as BlockBodyDto
from services.scanner.registry import store
from services.scanner.registry.artifacts import page_of
from services.scanner.registry.domain import FieldProblem, check_block_definition, check_versions
from services.scanner.registry.errors import (
    ArtifactNotFound,
    BlockNotFound,
    NotQuarantined,
    check_conditions,
    invalid,
)
from services.scanner.registry.handlers import RegistryBase, changed_fields, new_hex, repo_lock
from shared.pagination import seq_cursor, split_page
from shared.rpc import CallContext


def _uuid_text(hex_digits: str) -> str:
    return "-".join(
        (hex_digits[:8], hex_digits[8:12], hex_digits[12:16], hex_digits[16:20], hex_digits[20:])
    )


@dataclass
class BlockHandlers(RegistryBase):
    # ---- blocks ---------------------------------------------------------------------------
    async def create(self, request: BlockBodyDto, ctx: CallContext) -> Block:
        return await self._once(  # type: ignore[no-any-return]
            ctx,
            lambda: self._create(request, ctx),
            lambda applied: self._block(applied.aggregate_id),
        )

    async def _create(self, body: BlockBodyDto, ctx: CallContext) -> Block:
        problems = check_block_definition(
            purl=body.purl,
            versions=body.versions,
            digest=body.digest,
            name_pattern=body.name_pattern,
        )
        if body.blocked_until is not None and body.blocked_until <= dt.datetime.now(dt.UTC):
            problems.append(FieldProblem("$.blocked_until", "is not in the future"))
        if problems:
            raise invalid(problems, code="invalid_block")
        block_id = _uuid_text(new_hex(ctx.command_id, "block"))
        await self._emit(
            BlockCreated(
                id=block_id,
                purl=body.purl.strip() if body.purl else None,
                versions=body.versions,
                digest=body.digest,
                name_pattern=body.name_pattern,
                format=body.format,
                reason=body.reason,
                customer_message=body.customer_message,
                blocked_until=body.blocked_until.astimezone(dt.UTC) if body.blocked_until else None,
            ),
            aggregate=f"block:{block_id}",
            ctx=ctx,
        )
        return await self._block(block_id)

    async def list(self, request: BlockListRequest, _ctx: CallContext) -> BlockPage:
        after = seq_cursor(request.cursor)
        rows = await store.list_blocks(self.pool, after_seq=after, limit=request.limit + 1)
        page, cursor = split_page(rows, limit=request.limit, key=lambda row: [row.created_seq])
        return BlockPage(items=[row.block for row in page], next_cursor=cursor)

    async def get(self, request: BlockRequest, _ctx: CallContext) -> Block:
        return await self._block(request.id)

    async def update(self, request: BlockUpdateRequest, ctx: CallContext) -> Block:
        patch = request.patch
        async with self._locked(f"registry-block:{request.id}") as conn:
            current = await self._block(request.id, conn)
            check_conditions(current.revision, request, what="block")
            changes = changed_fields(patch, current, store.BLOCK_PATCHABLE)
            versions = changes.get("versions")
            if isinstance(versions, str):
                problems = (
                    check_versions(current.purl, versions)
                    if current.purl is not None
                    else [FieldProblem("$.versions", "a version range limits a purl block only")]
                )
                if problems:
                    raise invalid(problems, code="invalid_block")
            until = changes.get("blocked_until")
            if isinstance(until, dt.datetime):
                changes["blocked_until"] = until.astimezone(dt.UTC)
            if changes:
                await self._emit(
                    BlockUpdated(id=current.id, **changes), aggregate=f"block:{current.id}", ctx=ctx
                )
            return await self._block(current.id, conn)

    async def delete(self, request: BlockDeleteRequest, ctx: CallContext) -> Block:
        async with self._locked(f"registry-block:{request.id}") as conn:
            current = await self._block(request.id, conn)
            check_conditions(current.revision, request, what="block")
            await self._emit(BlockDeleted(id=current.id), aggregate=f"block:{current.id}", ctx=ctx)
        return current

    async def _block(self, block_id: str, db: store.Queryable | None = None) -> Block:
        found = await store.block_by_id(db or self.pool, block_id)
        if found is None:
            raise BlockNotFound(f"no block {block_id!r}")
        return found

    # ---- quarantine -----------------------------------------------------------------------
    async def quarantine_list(
        self, request: QuarantineListRequest, _ctx: CallContext
    ) -> ArtifactPage:
        before = seq_cursor(request.cursor)
        rows = await store.list_artifacts(
            self.pool,
            project_ids=request.project_ids,
            repo_id=None,
            q=None,
            before_seq=before,
            limit=request.limit + 1,
            quarantined_only=True,
        )
        return page_of(rows, request.limit)

    async def release(self, request: QuarantineDecisionRequest, ctx: CallContext) -> Artifact:
        artifact = await self._quarantined(request.artifact_id)
        async with self._locked(repo_lock(artifact.repo_id)) as conn:
            artifact = await self._quarantined(request.artifact_id, conn)
            await self._emit(
                ArtifactQuarantineReleased(
                    id=artifact.id,
                    repo_id=artifact.repo_id,
                    digest=artifact.digest,
                    reason=request.decision.reason,
                ),
                aggregate=f"artifact:{artifact.id}",
                ctx=ctx,
            )
            released = await store.artifact_by_id(conn, artifact.id)
        return released or artifact

    async def reject(self, request: QuarantineDecisionRequest, ctx: CallContext) -> Artifact:
        artifact = await self._quarantined(request.artifact_id)
        async with self._locked(repo_lock(artifact.repo_id)) as conn:
            artifact = await self._quarantined(request.artifact_id, conn)
            await self._emit(
                ArtifactDeleted(
                    id=artifact.id,
                    repo_id=artifact.repo_id,
                    digest=artifact.digest,
                    reason="quarantine_rejected",
                    detail=request.decision.reason,
                ),
                aggregate=f"artifact:{artifact.id}",
                ctx=ctx,
            )
        return artifact

    async def _quarantined(self, artifact_id: str, db: store.Queryable | None = None) -> Artifact:
        found = await store.artifact_by_id(db or self.pool, artifact_id)
        if found is None:
            raise ArtifactNotFound(f"no artifact {artifact_id!r}")
        if not found.quarantined:
            raise NotQuarantined(f"{artifact_id} is not in quarantine")
        return found
