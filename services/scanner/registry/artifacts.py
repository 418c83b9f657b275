"""``svc.scanner.artifact_*``: the package protocols' operations (register an upload, may a
download go ahead, the simple index, remove) and the metadata API's reads.

A registration runs under its repository's lock: the path is checked free (PyPI: never used,
even by a deleted file), then the quotas against the usage the projection holds (current:
every change of it was applied under the same lock), then ``artifact.uploaded`` is
published and the answer waits for the projection. Two uploads of one path: one 2xx, one
409. Over quota: ``quota.exceeded`` is published and the upload refused (413 / 507).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import asyncpg
import msgspec

from contracts.events.registry import ArtifactDeleted, ArtifactUploaded, QuotaExceeded
from contracts.rpc.registry import (
    Artifact,
    ArtifactFetchReply,
    ArtifactFetchRequest,
    ArtifactGetRequest,
    ArtifactIndexReply,
    ArtifactIndexRequest,
    ArtifactListRequest,
    ArtifactPage,
    ArtifactRegisterRequest,
    ArtifactRemoveRequest,
    BlockInfo,
    DigestUses,
    DigestUsesRequest,
    Repository,
)
from services.scanner.pulls.store import with_pulls
from services.scanner.registry import store
from services.scanner.registry.domain import (
    QUARANTINE_REASON,
    BlockRule,
    FieldProblem,
    artifact_ref,
    check_artifact_path,
    format_accepts,
    matching_block,
    pypi_purl,
    quarantine_block_id,
    quota_refusal,
)
from services.scanner.registry.errors import (
    ArtifactExists,
    ArtifactNotFound,
    OverQuota,
    RepositoryFormatMismatch,
    RepositoryNotFound,
    invalid,
)
from services.scanner.registry.handlers import RegistryBase, new_hex, repo_lock
from shared.commands import publish_in_command
from shared.pagination import seq_cursor, seq_page
from shared.rpc import CallContext


@dataclass
class ArtifactHandlers(RegistryBase):
    # ---- register -------------------------------------------------------------------------
    async def register(self, request: ArtifactRegisterRequest, ctx: CallContext) -> Artifact:
        return await self._once(  # type: ignore[no-any-return]
            ctx,
            lambda: self._register(request, ctx),
            lambda applied: self._artifact(applied.aggregate_id),
        )

    async def _register(self, request: ArtifactRegisterRequest, ctx: CallContext) -> Artifact:
        repo = await self._resolve(request.repo)
        if not format_accepts(repo.format, request.kind):
            raise RepositoryFormatMismatch(
                f"a {repo.format} repository does not take a {request.kind}"
            )
        problems = check_artifact_path(request.path)
        if repo.format == "pypi" and not request.name:
            problems.append(FieldProblem("$.name", "a pypi artifact names its package"))
        if problems:
            raise invalid(problems, code="invalid_artifact")
        purl = request.purl
        if purl is None and repo.format == "pypi" and request.name:
            purl = pypi_purl(request.name, request.version)
        artifact_id = "art_" + new_hex(ctx.command_id, "artifact")
        async with self._locked(repo_lock(repo.id)) as conn:
            repo = await self._repository(repo.id, conn)
            await self._check_path_free(conn, repo, request.path)
            await self._check_quota(repo, request.size, principal=request.uploaded_by, ctx=ctx)
            await self._emit(
                ArtifactUploaded(
                    id=artifact_id,
                    repo_id=repo.id,
                    project_id=repo.project_id,
                    format=repo.format,
                    path=request.path,
                    kind=request.kind,
                    digest=request.digest,
                    size=request.size,
                    name=request.name,
                    version=request.version,
                    purl=purl,
                    metadata_digest=request.metadata_digest,
                    requires_python=request.requires_python,
                    sbom_digests=list(request.sbom_digests),
                    provenance=request.provenance,
                    quarantined=repo.quarantine_new,
                    uploaded_by=request.uploaded_by,
                ),
                aggregate=f"artifact:{artifact_id}",
                ctx=ctx,
            )
        return await self._artifact(artifact_id)

    async def _check_path_free(self, conn: asyncpg.Connection, repo: Repository, path: str) -> None:
        if await store.artifact_by_path(conn, repo.id, path) is not None:
            raise ArtifactExists(f"{path!r} is already in {repo.slug}")
        if repo.format == "pypi" and await store.path_was_used(conn, repo.id, path):
            raise ArtifactExists(
                f"{path!r} was uploaded to {repo.slug} before and deleted: as on "
                "PyPI, a file name is never used twice (upload a new version)"
            )

    async def _check_quota(
        self, repo: Repository, size: int, *, principal: str, ctx: CallContext
    ) -> None:
        """Refuse (413 / 507) an addition of ``size`` bytes past the repository's quotas,
        publishing ``quota.exceeded``; ``repo`` read under its lock."""
        refusal = quota_refusal(
            quota_bytes=repo.quota_bytes,
            quota_artifacts=repo.quota_artifacts,
            used_bytes=repo.used_bytes,
            artifact_count=repo.artifact_count,
            size=size,
        )
        if refusal is None:
            return
        await publish_in_command(
            self.bus,
            QuotaExceeded(
                repo_id=repo.id,
                project_id=repo.project_id,
                kind=refusal.kind,
                limit=refusal.limit,
                used=refusal.used,
                attempted=refusal.attempted,
                principal=principal,
            ),
            aggregate=f"repository:{repo.id}",
            actor=ctx.actor,
            correlation_id=ctx.request_id or None,
        )
        raise OverQuota(refusal, repo_id=repo.id)

    # ---- fetch ----------------------------------------------------------------------------
    async def fetch(self, request: ArtifactFetchRequest, _ctx: CallContext) -> ArtifactFetchReply:
        # Read before the queries: the rows then reflect at least every event up to it.
        applied = self.runner.checkpoint
        # One connection for the few reads: each pooled query would also pay the pool's
        # reset round trip, and this runs for every file pip downloads.
        async with self.pool.acquire() as conn:
            reply = await self._fetch(request, conn)
        return msgspec.structs.replace(reply, applied_through=applied)

    async def _fetch(
        self, request: ArtifactFetchRequest, conn: store.Queryable
    ) -> ArtifactFetchReply:
        repo = await self._resolve(request.repo, conn)
        artifact = await store.artifact_by_path(conn, repo.id, request.path)
        if artifact is None:
            raise ArtifactNotFound(f"no {request.path!r} in {repo.slug}")
        rules = await self._candidate_rules([artifact], conn)
        block = matching_block(rules, store.facts_of(artifact), now=dt.datetime.now(dt.UTC))
        if block is not None:
            found = await store.block_by_id(conn, block.id)
            if found is not None:
                return ArtifactFetchReply(
                    verdict="blocked",
                    artifact=artifact,
                    repository=repo,
                    block=BlockInfo(
                        block_id=found.id,
                        reason=found.reason,
                        customer_message=found.customer_message,
                        blocked_until=found.blocked_until,
                    ),
                )
        if artifact.quarantined:
            return ArtifactFetchReply(
                verdict="quarantined",
                artifact=artifact,
                repository=repo,
                block=BlockInfo(
                    block_id=quarantine_block_id(artifact.id),
                    reason=QUARANTINE_REASON,
                    customer_message="",
                    blocked_until=None,
                ),
            )
        return ArtifactFetchReply(verdict="allowed", artifact=artifact, repository=repo)

    async def _candidate_rules(
        self, artifacts: list[Artifact], db: store.Queryable | None = None
    ) -> list[BlockRule]:
        keys = {
            ref.key
            for artifact in artifacts
            if (ref := artifact_ref(store.facts_of(artifact))) is not None
        }
        rows = await store.candidate_blocks(
            db or self.pool, digests=sorted({a.digest for a in artifacts}), purl_keys=sorted(keys)
        )
        return [row.rule for row in rows]

    # ---- index ----------------------------------------------------------------------------
    async def index(self, request: ArtifactIndexRequest, _ctx: CallContext) -> ArtifactIndexReply:
        applied = self.runner.checkpoint  # as fetch
        async with self.pool.acquire() as conn:  # one connection, as fetch
            reply = await self._index(request, conn)
        return msgspec.structs.replace(reply, applied_through=applied)

    async def _index(
        self, request: ArtifactIndexRequest, conn: store.Queryable
    ) -> ArtifactIndexReply:
        repo = await self._resolve(request.repo, conn)
        state = await store.repository_index_state(conn, repo.id)
        if state is None:  # deleted a moment ago
            raise RepositoryNotFound(f"no repository {repo.id!r}")
        repo, revision = state
        if request.name is None:
            names = await store.package_names(conn, repo.id)
            return ArtifactIndexReply(repository=repo, names=names, revision=revision)
        normalized = store.stored_name(repo.format, request.name) or ""
        artifacts = await store.package_files(conn, repo.id, normalized)
        if not artifacts:
            raise ArtifactNotFound(f"no files of {normalized!r} in {repo.slug}")
        rules = await self._candidate_rules(artifacts, conn)
        now = dt.datetime.now(dt.UTC)
        files = [
            store.index_file(
                artifact,
                available=not artifact.quarantined
                and matching_block(rules, store.facts_of(artifact), now=now) is None,
            )
            for artifact in artifacts
        ]
        return ArtifactIndexReply(repository=repo, files=files, revision=revision)

    # ---- remove ---------------------------------------------------------------------------
    async def remove(self, request: ArtifactRemoveRequest, ctx: CallContext) -> Artifact:
        repo = await self._resolve(request.repo)
        async with self._locked(repo_lock(repo.id)) as conn:
            artifact = await store.artifact_by_path(conn, repo.id, request.path)
            if artifact is None:
                raise ArtifactNotFound(f"no {request.path!r} in {repo.slug}")
            await self._emit(
                ArtifactDeleted(
                    id=artifact.id, repo_id=repo.id, digest=artifact.digest, reason="deleted"
                ),
                aggregate=f"artifact:{artifact.id}",
                ctx=ctx,
            )
        return artifact

    async def digest_uses(self, request: DigestUsesRequest, _ctx: CallContext) -> DigestUses:
        """For the gateway, which deletes a blob once nothing names it (after a remove)."""
        count = await store.digest_uses(self.pool, request.digest)
        return DigestUses(digest=request.digest, artifacts=count)

    # ---- metadata reads -------------------------------------------------------------------
    async def list(self, request: ArtifactListRequest, _ctx: CallContext) -> ArtifactPage:
        before = seq_cursor(request.cursor)
        rows = await store.list_artifacts(
            self.pool,
            project_ids=request.project_ids,
            repo_id=request.repo_id,
            q=request.q,
            before_seq=before,
            limit=request.limit + 1,
        )
        page = page_of(rows, request.limit)
        return msgspec.structs.replace(page, items=await with_pulls(self.pool, page.items))

    async def get(self, request: ArtifactGetRequest, _ctx: CallContext) -> Artifact:
        (found,) = await with_pulls(self.pool, [await self._artifact(request.id)])
        return found

    async def _artifact(self, artifact_id: str) -> Artifact:
        found = await store.artifact_by_id(self.pool, artifact_id)
        if found is None:
            raise ArtifactNotFound(f"no artifact {artifact_id!r}")
        return found


def page_of(rows: list[tuple[Artifact, int]], limit: int) -> ArtifactPage:
    items, cursor = seq_page(rows, limit)
    return ArtifactPage(items=items, next_cursor=cursor)
