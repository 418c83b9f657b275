"""``svc.scanner.retention_*``: a repository's retention policies and their runs.

Policy commands serialise on the repository's retention lock (names are unique per
repository, case-insensitively: a second ``nightly`` is a 409 naming the first), check
``If-Match``, publish one event and answer once the ``retention`` projection applied it.

A run request either plans at once (a dry run: nothing is written or published) or queues
a job (a real run: a row of the scanner's own, claimed by the run worker, see ``runs``) and
answers with the queued run; a retried request (same Idempotency-Key) finds the same run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from contracts.events.registry import RetentionPolicyDeleted, RetentionPolicySet
from contracts.rpc.retention import (
    RetentionCreateRequest,
    RetentionDeleteRequest,
    RetentionListRequest,
    RetentionPolicyPage,
    RetentionPolicyView,
    RetentionRef,
    RetentionReplaceRequest,
    RetentionRun,
    RetentionRunListRequest,
    RetentionRunPage,
    RetentionRunRef,
    RetentionRunRequest,
)
from services.scanner.registry.errors import check_revision
from services.scanner.registry.handlers import RegistryBase, new_hex
from services.scanner.retention import domain, store
from services.scanner.retention.errors import (
    PolicyDisabled,
    PolicyNameInUse,
    PolicyNotFound,
    RunNotFound,
    invalid_policy,
)
from services.scanner.retention.runs import queue_run
from shared.pagination import (
    InvalidCursor,
    decode_cursor,
    seq_cursor,
    seq_page,
    split_page,
)
from shared.rpc import CallContext

# Run cursors carry microseconds since 1970: within the years PostgreSQL and Python share.
_MICROS = range(0, 253_402_300_800 * 1_000_000)


def retention_lock(repo_id: str) -> str:
    return f"registry-retention:{repo_id}"


@dataclass
class RetentionHandlers(RegistryBase):
    # Wakes the run worker after a run was queued (it also hears the NOTIFY).
    wake: Callable[[], None] = field(default=lambda: None)

    # ---- policies -------------------------------------------------------------------------
    async def create(
        self, request: RetentionCreateRequest, ctx: CallContext
    ) -> RetentionPolicyView:
        return await self._once(  # type: ignore[no-any-return]
            ctx,
            lambda: self._create(request, ctx),
            lambda applied: self._policy(applied.aggregate_id),
        )

    async def _create(
        self, request: RetentionCreateRequest, ctx: CallContext
    ) -> RetentionPolicyView:
        repo = await self._repository(request.repo_id)
        problems = domain.check_policy(request.policy)
        if problems:
            raise invalid_policy(problems)
        policy_id = "ret_" + new_hex(ctx.command_id, "retention-policy")
        async with self._locked(retention_lock(repo.id)) as conn:
            await self._name_free(conn, repo.id, request.policy.name, other_than=None)
            await self._emit(
                RetentionPolicySet(
                    id=policy_id, repo_id=repo.id, policy=request.policy, project_id=repo.project_id
                ),
                aggregate=f"retention-policy:{policy_id}",
                ctx=ctx,
            )
        return await self._policy(policy_id)

    async def _name_free(
        self, conn: store.Queryable, repo_id: str, name: str, *, other_than: str | None
    ) -> None:
        taken = await store.policy_named(conn, repo_id, name, other_than=other_than)
        if taken is not None:
            raise PolicyNameInUse(
                f"the repository already has a retention policy named {taken.name!r} "
                f"({taken.id}); choose another name or change that policy",
                extra={
                    "conflicting_policy_id": taken.id,
                    "errors": [{"field": "$.name", "message": "in use", "in": "body"}],
                },
            )

    async def list(self, request: RetentionListRequest, _ctx: CallContext) -> RetentionPolicyPage:
        if request.repo_id is not None:
            await self._repository(request.repo_id)
        after = seq_cursor(request.cursor)
        rows = await store.list_policies(
            self.pool,
            repo_id=request.repo_id,
            project_ids=request.project_ids,
            after_seq=after,
            limit=request.limit + 1,
        )
        items, cursor = seq_page(rows, request.limit)
        return RetentionPolicyPage(items=items, next_cursor=cursor)

    async def get(self, request: RetentionRef, _ctx: CallContext) -> RetentionPolicyView:
        return await self._policy(request.id, repo_id=request.repo_id)

    async def replace(
        self, request: RetentionReplaceRequest, ctx: CallContext
    ) -> RetentionPolicyView:
        problems = domain.check_policy(request.policy)
        if problems:
            raise invalid_policy(problems)
        async with self._locked(retention_lock(request.repo_id)) as conn:
            current = await self._policy(request.id, repo_id=request.repo_id, db=conn)
            check_revision(
                current.revision, if_revision=None, if_match=request.if_match, what="policy"
            )
            await self._name_free(conn, current.repo_id, request.policy.name, other_than=current.id)
            if request.policy != store.policy_of(current):
                await self._emit(
                    RetentionPolicySet(
                        id=current.id,
                        repo_id=current.repo_id,
                        policy=request.policy,
                        project_id=current.project_id,
                    ),
                    aggregate=f"retention-policy:{current.id}",
                    ctx=ctx,
                )
            return await self._policy(current.id, db=conn)

    async def delete(
        self, request: RetentionDeleteRequest, ctx: CallContext
    ) -> RetentionPolicyView:
        async with self._locked(retention_lock(request.repo_id)) as conn:
            current = await self._policy(request.id, repo_id=request.repo_id, db=conn)
            check_revision(
                current.revision, if_revision=None, if_match=request.if_match, what="policy"
            )
            await self._emit(
                RetentionPolicyDeleted(id=current.id, repo_id=current.repo_id),
                aggregate=f"retention-policy:{current.id}",
                ctx=ctx,
            )
        return current

    async def _policy(
        self, policy_id: str, *, repo_id: str | None = None, db: store.Queryable | None = None
    ) -> RetentionPolicyView:
        found = await store.policy_by_id(db or self.pool, policy_id)
        if found is None or (repo_id is not None and found.repo_id != repo_id):
            raise PolicyNotFound(f"no retention policy {policy_id!r} in this repository")
        return found

    # ---- runs -----------------------------------------------------------------------------
    async def run(self, request: RetentionRunRequest, ctx: CallContext) -> RetentionRun:
        view = await self._policy(request.id, repo_id=request.repo_id)
        now = dt.datetime.now(dt.UTC)
        if request.dry_run:
            plan = domain.plan(
                store.policy_of(view), await store.candidates(self.pool, view.repo_id), now=now
            )
            return store.dry_run(
                plan, repo_id=view.repo_id, policy_id=view.id, requested_by=ctx.actor, now=now
            )
        if not view.enabled:
            raise PolicyDisabled(
                f"retention policy {view.name!r} is disabled: enable it to run it "
                "(a dry run shows what it would delete)"
            )
        run_id = "rrun_" + new_hex(ctx.command_id, "retention-run")
        await queue_run(
            self.pool,
            run_id=run_id,
            repo_id=view.repo_id,
            policy_id=view.id,
            trigger="manual",
            requested_by=ctx.actor,
            request_id=ctx.request_id,
            sequence=self.runner.checkpoint,
            now=now,
        )
        self.wake()
        return await self._run(run_id, repo_id=view.repo_id)

    async def run_get(self, request: RetentionRunRef, _ctx: CallContext) -> RetentionRun:
        return await self._run(request.run_id, repo_id=request.repo_id)

    async def run_list(
        self, request: RetentionRunListRequest, _ctx: CallContext
    ) -> RetentionRunPage:
        await self._repository(request.repo_id)
        before = None
        if request.cursor:
            micros, run_id = decode_cursor(request.cursor, kinds=(int, str))
            if not _MICROS.start <= int(micros) < _MICROS.stop:
                raise InvalidCursor("the cursor belongs to another list")
            before = (int(micros), str(run_id))
        rows = await store.list_runs(
            self.pool, repo_id=request.repo_id, before=before, limit=request.limit + 1
        )
        page, cursor = split_page(rows, limit=request.limit, key=store.run_key)
        return RetentionRunPage(items=page, next_cursor=cursor)

    async def _run(self, run_id: str, *, repo_id: str) -> RetentionRun:
        found = await store.run_by_id(self.pool, run_id)
        if found is None or found.repo_id != repo_id:
            raise RunNotFound(f"no retention run {run_id!r} in this repository")
        return found
