"""``svc.release-decision.*`` of the decisions part: decisions and their history, the
decision policy, promotions and health.

Commands serialise on their aggregate (the policy's scope, the snapshot) with an advisory
lock, publish, and answer once the decisions projection has applied the event
(read-your-writes). Promotions of one snapshot also queue up in-process first, so a burst
of them waits for the lock without holding database connections the projection needs.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import zlib
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import msgspec

from contracts.envelope import EventPayload
from contracts.events.licensing import PolicyChanged
from contracts.events.releases import (
    BLOCKERS_MAX,
    METADATA_BYTES_MAX,
    Blocker,
    PromotionOverride,
    ReleasePromoted,
)
from contracts.ids import new_id
from contracts.rpc import release_decision as rpc
from services.release_decision.decisions import (
    artifact_decisions,
    health,
    policies,
    queries,
    store,
)
from services.release_decision.decisions.domain.rules import evaluate
from services.release_decision.decisions.errors import (
    AlreadyPromoted,
    OverrideNotAllowed,
    ProjectNotFound,
    ReleaseBlocked,
    RepoNotFound,
    SnapshotNotFound,
    SnapshotNotPromotable,
)
from services.release_decision.repos import keyed
from shared.bus import Bus
from shared.commands import advisory_locked, publish_visible, wait_visible
from shared.errors import ValidationFailed
from shared.pagination import split_page
from shared.projection import ProjectionRunner
from shared.rpc import CallContext
from shared.settings import Settings

# In-process queues for promotions (striped by snapshot).
PROMOTION_STRIPES = 64

Endpoint = tuple[str, type, Callable[[Any, CallContext], Awaitable[Any]]]


@dataclass
class DecisionHandlers:
    pool: asyncpg.Pool
    runner: ProjectionRunner
    settings: Settings
    bus: Bus
    _stripes: list[asyncio.Lock] = field(
        default_factory=lambda: [asyncio.Lock() for _ in range(PROMOTION_STRIPES)]
    )

    def endpoints(self) -> list[Endpoint]:
        return [
            (rpc.DECISION_GET, rpc.DecisionRequest, self.decision_get),
            (rpc.DECISION_HISTORY, rpc.DecisionHistoryQuery, self.decision_history),
            (rpc.POLICY_GET, rpc.PolicyGetRequest, self.policy_get),
            (rpc.POLICY_PUT, rpc.PolicyPutRequest, self.policy_put),
            (rpc.PROMOTE, rpc.PromoteRequest, self.promote),
            (rpc.PROMOTIONS, rpc.PromotionsRequest, self.promotions),
            (rpc.HEALTH, rpc.HealthRequest, self.health),
            (rpc.ARTIFACT_DECISION, rpc.ArtifactDecisionRequest, self.artifact_decision),
        ]

    # ---- decisions --------------------------------------------------------------------------
    async def decision_get(
        self, request: rpc.DecisionRequest, _ctx: CallContext
    ) -> rpc.DecisionView:
        if request.as_of is not None:
            return await queries.decision_as_of(
                self.pool, request.repo, request.commit, request.as_of
            )
        return await queries.current_decision(self.pool, request.repo, request.commit)

    async def artifact_decision(
        self, request: rpc.ArtifactDecisionRequest, _ctx: CallContext
    ) -> rpc.DecisionView:
        return await artifact_decisions.artifact_decision(self.pool, request)

    async def decision_history(
        self, request: rpc.DecisionHistoryQuery, _ctx: CallContext
    ) -> rpc.DecisionHistoryPage:
        return await queries.history(self.pool, request)

    # ---- policy -----------------------------------------------------------------------------
    async def policy_get(
        self, request: rpc.PolicyGetRequest, _ctx: CallContext
    ) -> rpc.DecisionPolicyView:
        await self._check_project(request.project_id)
        return await policies.policy_view(self.pool, request.project_id)

    async def policy_put(
        self, request: rpc.PolicyPutRequest, ctx: CallContext
    ) -> rpc.DecisionPolicyView:
        await self._check_project(request.project_id)
        document = policies.canonical(request.document)
        scope = request.project_id or store.ORG_SCOPE
        async with self._locked(f"release-policy:{scope}") as conn:
            current = await conn.fetchrow(
                "SELECT version, document FROM release_decision.policies WHERE scope = $1", scope
            )
            version = current["version"] if current else 0
            policies.check_if_match(request.if_match, version)
            if current is None or store.policy_document(current["document"]) != document:
                pid = policies.policy_id(request.project_id)
                await self._emit(
                    PolicyChanged(
                        policy_id=pid,
                        kind="release",
                        scope="org" if request.project_id is None else "project",
                        project_id=request.project_id,
                        version=version + 1,
                        release_document=document,
                    ),
                    aggregate=f"policy:{pid}",
                    ctx=ctx,
                )
        return await policies.policy_view(self.pool, request.project_id)

    async def _check_project(self, project_id: str | None) -> None:
        if project_id is None or await self._project_known(project_id):
            return
        # The gateway answered the project's creation before this read model applied it: a
        # policy PUT right after POST /projects must not be a 404.
        last = await self.bus.last_sequence_of(self.runner.projection.subjects)
        await wait_visible(self.runner, last, settings=self.settings)
        if not await self._project_known(project_id):
            raise ProjectNotFound(f"no project {project_id}")

    async def _project_known(self, project_id: str) -> bool:
        return bool(
            await self.pool.fetchval(
                "SELECT 1 FROM release_decision.projects WHERE id = $1", project_id
            )
        )

    async def _check_repo(self, repo: str, project_id: str | None) -> None:
        """An unknown repo (or one the named project does not list) is 404, as for its
        decision: health never reports on a repo nothing knows."""
        known = (
            await store.repo_known(self.pool, repo)
            if project_id is None
            else await self.pool.fetchval(
                "SELECT 1 FROM release_decision.projects WHERE id = $1 AND $2 = ANY(repos)",
                project_id,
                repo,
            )
        )
        if not known:
            what = "no project lists" if project_id is None else "the project does not list"
            raise RepoNotFound(f"{what} {repo}")

    # ---- promotions -------------------------------------------------------------------------
    async def promote(self, request: rpc.PromoteRequest, ctx: CallContext) -> rpc.PromotionView:
        body = request.body
        if body.override is not None and "APPROVER" not in ctx.roles:
            raise OverrideNotAllowed("promoting despite NO_SHIP needs the APPROVER role")
        if len(msgspec.json.encode(body.metadata)) > METADATA_BYTES_MAX:
            raise ValidationFailed(
                f"metadata: at most {METADATA_BYTES_MAX} bytes as JSON",
                extra={"errors": [{"field": "$.metadata", "message": "too large"}]},
            )
        stripe = self._stripes[zlib.crc32(body.snapshot_id.encode()) % PROMOTION_STRIPES]
        async with stripe, self._locked(f"promote:{body.snapshot_id}") as conn:
            scan = await store.scan_row(conn, body.snapshot_id)
            if (
                scan is None
                or scan["repo"] is None  # an artifact's SBOM naming no commit
                or (
                    request.allowed_project is not None
                    and scan["project_id"] != request.allowed_project
                )
            ):
                raise SnapshotNotFound(f"no snapshot {body.snapshot_id} of a commit")
            if scan["status"] != "succeeded":
                raise SnapshotNotPromotable(
                    f"snapshot {body.snapshot_id} is {scan['status']}, not succeeded"
                )
            if await conn.fetchval(
                "SELECT 1 FROM release_decision.promotions "
                "WHERE snapshot_id = $1 AND target_status = $2",
                body.snapshot_id,
                body.target_status,
            ):
                raise AlreadyPromoted(
                    f"snapshot {body.snapshot_id} is already promoted to {body.target_status}"
                )
            now = dt.datetime.now(dt.UTC)
            loaded = await store.snapshot_decision_inputs(conn, scan, at=now)
            result = evaluate(loaded.policy, loaded.evidence)
            blockers = list(result.blockers[:BLOCKERS_MAX])
            if result.decision == "NO_SHIP" and body.override is None:
                raise ReleaseBlocked(
                    f"snapshot {body.snapshot_id} may not ship: {len(result.blockers)} blocker(s)",
                    extra={"blockers": [msgspec.to_builtins(b) for b in blockers]},
                )
            override = (
                PromotionOverride(reason=body.override.reason, approver=ctx.actor)
                if body.override is not None and result.decision == "NO_SHIP"
                else None
            )
            promotion_id = new_id()
            await self._emit(
                ReleasePromoted(
                    promotion_id=promotion_id,
                    snapshot_id=body.snapshot_id,
                    project_id=scan["project_id"],
                    repo=scan["repo"],
                    commit=scan["commit"],
                    target_status=body.target_status,
                    release_label=body.release_label or scan["label"],
                    metadata=body.metadata,
                    decision=result.decision,
                    blockers=blockers,
                    policy_version=loaded.policy.version,
                    override=override,
                    promoted_by=ctx.actor,
                    promoted_at=now,
                ),
                aggregate=f"snapshot:{body.snapshot_id}",
                ctx=ctx,
            )
        row = await self.pool.fetchrow(
            f"SELECT {_PROMOTION_COLUMNS} FROM release_decision.promotions WHERE id = $1",
            promotion_id,
        )
        return promotion_view(row)

    async def promotions(
        self, request: rpc.PromotionsRequest, _ctx: CallContext
    ) -> rpc.PromotionPage:
        request = keyed(request)
        after = queries.cursor_key(request.cursor, (int,))
        rows = await self.pool.fetch(
            f"SELECT {_PROMOTION_COLUMNS} FROM release_decision.promotions "
            "WHERE ($1::text IS NULL OR repo = $1) AND ($2::text IS NULL OR project_id = $2) "
            "AND ($3::bigint IS NULL OR seq < $3) ORDER BY seq DESC LIMIT $4",
            request.repo,
            request.project_id,
            after[0] if after else None,
            request.limit + 1,
        )
        page, cursor = split_page(rows, limit=request.limit, key=lambda r: (r["seq"],))
        return rpc.PromotionPage(items=[promotion_view(r) for r in page], next_cursor=cursor)

    # ---- health -----------------------------------------------------------------------------
    async def health(self, request: rpc.HealthRequest, _ctx: CallContext) -> rpc.HealthView:
        request = keyed(request)
        if request.project_id is not None:
            await self._check_project(request.project_id)
        if request.repo is not None:
            await self._check_repo(request.repo, request.project_id)
        return await health.check(
            pool=self.pool,
            bus=self.bus,
            runner=self.runner,
            settings=self.settings,
            repo=request.repo,
            project_id=request.project_id,
        )

    # ---- plumbing ---------------------------------------------------------------------------
    async def _emit(self, payload: EventPayload, *, aggregate: str, ctx: CallContext) -> int:
        return await publish_visible(
            self.bus, self.runner, payload, aggregate=aggregate, ctx=ctx, settings=self.settings
        )

    def _locked(self, name: str) -> AbstractAsyncContextManager[asyncpg.Connection]:
        return advisory_locked(self.pool, name)


_PROMOTION_COLUMNS = (
    "id, snapshot_id, project_id, repo, commit, target_status, release_label, metadata, "
    "decision, blockers, policy_version, override, promoted_by, promoted_at, seq"
)


def promotion_view(row: asyncpg.Record) -> rpc.PromotionView:
    return rpc.PromotionView(
        id=row["id"],
        snapshot_id=row["snapshot_id"],
        repo=row["repo"],
        commit=row["commit"],
        project_id=row["project_id"],
        status=row["target_status"],
        label=row["release_label"],
        metadata=row["metadata"] or {},
        promoted_by=row["promoted_by"],
        promoted_at=row["promoted_at"],
        decision=row["decision"],
        blockers=[msgspec.convert(b, Blocker) for b in row["blockers"]],
        policy_version=row["policy_version"],
        override=row["override"],
    )
