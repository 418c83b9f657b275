"""``svc.release-decision.rc_*``: release candidates, environments and deployments.

Commands serialise on their aggregate with an advisory lock — a release of a project while
a candidate is cut, an environment of a project while it is configured or deployed to —
check the read model, publish, and answer once the ``candidates`` projection has applied
their last event (read-your-writes).
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import asyncpg
import msgspec

from contracts.envelope import EventPayload
from contracts.events.deployments import (
    DeploymentGate,
    DeploymentRequested,
    DeploymentStatusChanged,
    EnvironmentUpdated,
    ReleaseCandidateCreated,
    ReleaseCreated,
)
from contracts.events.releases import Blocker, PromotionOverride
from contracts.ids import new_id
from contracts.rpc import release_candidates as rpc
from contracts.rpc.release_decision import DecisionView
from services.release_decision.candidates import errors, store
from services.release_decision.candidates.domain import deployments as rules
from services.release_decision.candidates.domain.versions import (
    CandidateVersion,
    InvalidCandidateVersion,
    InvalidCommitHash,
    is_environment_name,
    is_repo,
    normalise_commit,
    parse_candidate_version,
    repo_in_project,
)
from shared.bus import Bus
from shared.commands import advisory_locked, wait_visible
from shared.errors import NotFound
from shared.pagination import decode_cursor, encode_cursor
from shared.projection import ProjectionRunner
from shared.rpc import CallContext
from shared.settings import Settings

DecisionSource = Callable[[asyncpg.Connection, str, str], Awaitable[DecisionView]]


def _parse_version(text: str) -> CandidateVersion:
    try:
        return parse_candidate_version(text)
    except InvalidCandidateVersion:
        raise errors.InvalidReleaseCandidateVersion(text) from None


@dataclass
class CandidateHandlers:
    pool: asyncpg.Pool
    runner: ProjectionRunner
    settings: Settings
    bus: Bus
    # The decisions part's read of a commit's current decision (decisions.queries).
    decision_of: DecisionSource

    # ---- releases and candidates ------------------------------------------------------------
    async def candidate_create(
        self, request: rpc.CandidateCreateRequest, ctx: CallContext
    ) -> rpc.CandidateCreateReply:
        project, body = request.project, request.body
        parsed = _parse_version(request.version)
        try:
            commit = normalise_commit(body.commit)
        except InvalidCommitHash:
            raise errors.InvalidCommitHash(body.commit) from None
        repo = repo_in_project(body.repo, project.repos) if is_repo(body.repo) else None
        if repo is None:
            raise errors.RepositoryNotFound(body.repo, project.slug)
        if project.archived:
            raise errors.ProjectArchived(project.slug)
        release_created = False
        async with self._locked(f"rc:release:{project.id}:{parsed.release}") as conn:
            existing = await store.candidate(conn, project.id, parsed.version)
            if existing is not None:
                if existing.repo == repo and existing.commit == commit:
                    return rpc.CandidateCreateReply(
                        candidate=existing, release_created=False, created=False
                    )
                raise errors.CandidateExists(
                    parsed.version, repo=existing.repo, commit=existing.commit
                )
            found = await store.release(conn, project.id, parsed.release)
            if found is not None:
                # rc1 and rc01 would both be candidate 1: which one "candidate 1" means
                # (the latest, the one to deploy) must not depend on a spelling.
                same_number = await store.candidate_numbered(conn, found.id, parsed.rc_number)
                if same_number is not None:
                    raise errors.CandidateExists(
                        same_number.version, repo=same_number.repo, commit=same_number.commit
                    )
            release_id = found.id if found is not None else new_id()
            candidate_id = new_id()
            if found is None:
                release_created = True
                await self._publish(
                    ReleaseCreated(
                        release_id=release_id,
                        project_id=project.id,
                        version=parsed.release,
                        release_candidate_id=candidate_id,
                    ),
                    aggregate=f"release:{release_id}",
                    ctx=ctx,
                )
            sequence = await self._publish(
                ReleaseCandidateCreated(
                    release_candidate_id=candidate_id,
                    release_id=release_id,
                    project_id=project.id,
                    version=parsed.version,
                    release_version=parsed.release,
                    rc_number=parsed.rc_number,
                    repo=repo,
                    commit=commit,
                    trigger_build_workflow=body.trigger_build_workflow,
                ),
                aggregate=f"release:{release_id}",
                ctx=ctx,
            )
            await self._visible(sequence)
        view = await store.candidate(self.pool, project.id, parsed.version)
        assert view is not None
        return rpc.CandidateCreateReply(
            candidate=view, release_created=release_created, created=True
        )

    async def release_list(
        self, request: rpc.ReleaseListRequest, _ctx: CallContext
    ) -> rpc.ReleasePage:
        query = request.query
        before = int(decode_cursor(query.cursor, kinds=(int,))[0]) if query.cursor else None
        rows = await store.releases(
            self.pool, request.project_id, before_seq=before, limit=query.limit + 1
        )
        page = rows[: query.limit]
        latest = await store.latest_candidates(self.pool, [row.id for row in page])
        cursor = encode_cursor([page[-1].created_seq]) if len(rows) > query.limit else None
        return rpc.ReleasePage(
            items=[store.release_view(r, latest=latest.get(r.id), candidates=None) for r in page],
            next_cursor=cursor,
        )

    async def release_get(
        self, request: rpc.ReleaseGetRequest, _ctx: CallContext
    ) -> rpc.ReleaseView:
        row = await store.release(self.pool, request.project_id, request.version)
        if row is None:
            # A candidate version names its release.
            try:
                parsed = parse_candidate_version(request.version)
            except InvalidCandidateVersion:
                raise errors.ReleaseNotFound(request.version) from None
            if await store.candidate(self.pool, request.project_id, parsed.version) is not None:
                row = await store.release(self.pool, request.project_id, parsed.release)
        if row is None:
            raise errors.ReleaseNotFound(request.version)
        candidates = await store.candidates_of(self.pool, row.id)
        return store.release_view(
            row, latest=candidates[-1] if candidates else None, candidates=candidates
        )

    # ---- environments -----------------------------------------------------------------------
    async def environment_put(
        self, request: rpc.EnvironmentPutRequest, ctx: CallContext
    ) -> rpc.EnvironmentPutReply:
        project, body = request.project, request.body
        if not is_environment_name(request.name):
            raise errors.InvalidEnvironmentName(request.name)
        if project.archived:
            raise errors.ProjectArchived(project.slug)
        async with self._locked(f"rc:env:{project.id}:{request.name}") as conn:
            current = await store.environment(conn, project.id, request.name)
            if current is not None and (current.protected, current.workflow_url) == (
                body.protected,
                body.workflow_url,
            ):
                return rpc.EnvironmentPutReply(environment=current, created=False)
            environment_id = current.id if current is not None else new_id()
            sequence = await self._publish(
                EnvironmentUpdated(
                    environment_id=environment_id,
                    project_id=project.id,
                    name=request.name,
                    protected=body.protected,
                    workflow_url=body.workflow_url,
                    version=(current.version if current is not None else 0) + 1,
                    created=current is None,
                ),
                aggregate=f"environment:{environment_id}",
                ctx=ctx,
            )
            await self._visible(sequence)
        view = await store.environment(self.pool, project.id, request.name)
        assert view is not None
        return rpc.EnvironmentPutReply(environment=view, created=current is None)

    async def environment_list(
        self, request: rpc.EnvironmentListRequest, _ctx: CallContext
    ) -> rpc.EnvironmentList:
        return rpc.EnvironmentList(items=await store.environments(self.pool, request.project_id))

    # ---- deployments ------------------------------------------------------------------------
    async def deployment_create(
        self, request: rpc.DeploymentCreateRequest, ctx: CallContext
    ) -> rpc.DeploymentView:
        project, body = request.project, request.body
        parsed = await self._deployment_target(project, request.environment, body)
        if body.override is not None and not rules.override_allowed(ctx.roles):
            raise errors.OverrideNotAllowed()
        deployment_id = new_id()
        async with self._locked(f"rc:env:{project.id}:{request.environment}") as conn:
            # Read again under the lock: the environment may have been re-configured.
            env = await self._environment(project.id, request.environment, db=conn)
            candidate = await store.candidate(conn, project.id, parsed.version)
            if candidate is None:
                raise errors.ReleaseNotFound(parsed.version)
            gate = await self._gate(conn, env, candidate, body, ctx)
            sequence = await self._publish(
                DeploymentRequested(
                    deployment_id=deployment_id,
                    project_id=project.id,
                    environment_id=env.id,
                    environment=env.name,
                    workflow_url=env.workflow_url,
                    protected=env.protected,
                    release_candidate_id=candidate.id,
                    release_candidate_version=candidate.version,
                    release_version=candidate.release_version,
                    repo=candidate.repo,
                    commit=candidate.commit,
                    gate=gate,
                ),
                aggregate=f"deployment:{deployment_id}",
                ctx=ctx,
            )
            await self._visible(sequence)
        return await self._deployment(deployment_id)

    async def _gate(
        self,
        conn: asyncpg.Connection,
        env: rpc.EnvironmentView,
        candidate: rpc.CandidateView,
        body: rpc.DeploymentBody,
        ctx: CallContext,
    ) -> DeploymentGate | None:
        """The gate a protected environment records; raises when it refuses."""
        if not env.protected:
            return None
        view = await self._decision(conn, candidate)
        outcome = rules.gate(
            protected=True,
            decision=view.decision,
            blockers=view.blockers,
            override_requested=body.override is not None,
            roles=ctx.roles,
        )
        if isinstance(outcome, rules.OverrideNotAllowed):
            raise errors.OverrideNotAllowed()
        if isinstance(outcome, rules.GateRefused):
            raise errors.DeploymentBlocked(
                environment=env.name, commit=candidate.commit, blockers=list(outcome.blockers)
            )
        override = None
        if outcome.overridden and body.override is not None:
            override = PromotionOverride(reason=body.override.reason, approver=ctx.actor)
        return DeploymentGate(
            decision=view.decision,
            blockers=list(view.blockers),
            revision=view.revision,
            policy_version=view.policy_version,
            override=override,
        )

    async def _decision(
        self, conn: asyncpg.Connection, candidate: rpc.CandidateView
    ) -> DecisionView:
        try:
            return await self.decision_of(conn, candidate.repo, candidate.commit)
        except NotFound as exc:
            # The decisions part does not know the repo (yet): no evidence, fail closed.
            return DecisionView(
                repo=candidate.repo,
                commit=candidate.commit,
                decision="NO_SHIP",
                blockers=[Blocker(code="no_evidence", message=exc.detail, ref="sbom")],
                evaluated_at=candidate.created_at,
                policy_version=0,
                revision=0,
            )

    async def _deployment_target(
        self,
        project: rpc.ProjectRef,
        environment: str,
        body: rpc.DeploymentBody | rpc.DeploymentStatusBody,
    ) -> CandidateVersion:
        """The checks both deployment writes start with: the environment exists, the
        project is not archived, and the candidate version parses."""
        await self._environment(project.id, environment)
        if project.archived:
            raise errors.ProjectArchived(project.slug)
        return _parse_version(body.release_candidate_version)

    async def deployment_status(
        self, request: rpc.DeploymentStatusRequest, ctx: CallContext
    ) -> rpc.DeploymentView:
        project, body = request.project, request.body
        parsed = await self._deployment_target(project, request.environment, body)
        async with self._locked(f"rc:env:{project.id}:{request.environment}") as conn:
            env = await self._environment(project.id, request.environment, db=conn)
            candidate = await store.candidate(conn, project.id, parsed.version)
            if candidate is None:
                raise errors.ReleaseNotFound(parsed.version)
            current = await store.latest_deployment_of(conn, env.id, candidate.id)
            plan = rules.plan_status(
                current,
                body.status,
                environment=await store.live_deployments(conn, env.id),
                order_if_created=sys.maxsize,
            )
            deployment_id = current.id if current is not None else new_id()
            sequence = 0
            if plan.change:
                sequence = await self._publish(
                    DeploymentStatusChanged(
                        deployment_id=deployment_id,
                        project_id=project.id,
                        environment_id=env.id,
                        environment=env.name,
                        release_candidate_id=candidate.id,
                        release_candidate_version=candidate.version,
                        repo=candidate.repo,
                        commit=candidate.commit,
                        status=body.status,
                        previous_status=current.status if current is not None else None,
                    ),
                    aggregate=f"deployment:{deployment_id}",
                    ctx=ctx,
                )
            for older_id in plan.supersede:
                older = await store.deployment(conn, older_id)
                assert older is not None
                sequence = await self._publish(
                    DeploymentStatusChanged(
                        deployment_id=older.id,
                        project_id=project.id,
                        environment_id=env.id,
                        environment=env.name,
                        release_candidate_id=older.release_candidate_id,
                        release_candidate_version=older.release_candidate_version,
                        repo=older.repo,
                        commit=older.commit,
                        status="inactive",
                        previous_status=older.status,
                        cause="superseded",
                        superseded_by=deployment_id,
                    ),
                    aggregate=f"deployment:{older.id}",
                    ctx=ctx,
                )
            if sequence:
                await self._visible(sequence)
        return await self._deployment(deployment_id)

    async def deployment_list(
        self, request: rpc.DeploymentListRequest, _ctx: CallContext
    ) -> rpc.DeploymentPage:
        env = await self._environment(request.project_id, request.environment)
        query = request.query
        before = int(decode_cursor(query.cursor, kinds=(int,))[0]) if query.cursor else None
        rows = await store.deployments(
            self.pool,
            env.id,
            statuses=list(query.status) if query.status else None,
            candidate_version=query.release_candidate_version,
            before_seq=before,
            limit=query.limit + 1,
        )
        page = rows[: query.limit]
        cursor = encode_cursor([page[-1][1]]) if len(rows) > query.limit else None
        return rpc.DeploymentPage(items=[view for view, _ in page], next_cursor=cursor)

    # ---- helpers ----------------------------------------------------------------------------
    async def _environment(
        self, project_id: str, name: str, *, db: store.Queryable | None = None
    ) -> rpc.EnvironmentView:
        env = None
        if is_environment_name(name):
            env = await store.environment(db or self.pool, project_id, name)
        if env is None:
            raise errors.EnvironmentNotFound(name)
        return env

    async def _deployment(self, deployment_id: str) -> rpc.DeploymentView:
        view = await store.deployment(self.pool, deployment_id)
        assert view is not None, deployment_id
        return view

    async def _publish(self, payload: EventPayload, *, aggregate: str, ctx: CallContext) -> int:
        # Encoding does not check constraints, decoding does: an event the projection could
        # not decode would be dead-lettered after the caller was told it succeeded.
        msgspec.json.decode(msgspec.json.encode(payload), type=type(payload))
        _, sequence = await self.bus.publish(
            payload, aggregate=aggregate, actor=ctx.actor, correlation_id=ctx.request_id or None
        )
        return sequence

    async def _visible(self, sequence: int) -> None:
        await wait_visible(self.runner, sequence, settings=self.settings)

    def _locked(self, name: str) -> AbstractAsyncContextManager[asyncpg.Connection]:
        return advisory_locked(self.pool, name)
