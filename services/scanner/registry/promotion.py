"""``svc.scanner.artifact_promote``: copy an artifact by digest into another repository of
the same format (staging → release). The copy is a new artifact of the same path, bytes,
metadata and scan; ``artifact.promoted`` names both and carries the decision it was made on.

Refused (409 ``promotion_blocked``, every blocker listed):

* always, when a block applies to the artifact (``artifact_blocked``) or it is quarantined
  (``artifact_quarantined``): lift the block or release it first — an override does not
  reach past the registry's own firewall;
* when its release decision (the gateway reads it from release-decision and passes it on:
  services do not call each other) is NO_SHIP, unless an APPROVER overrides with a reason
  (403 ``override_not_allowed`` for anyone else; the reason and the overridden blockers are
  in the event, so the audit log keeps them).

The destination path taken (or, on PyPI, ever used) is 409 ``artifact_exists``; a
repository of another format 400 ``repository_format_mismatch``; the destination's quotas
apply as to an upload. Runs under the destination repository's lock and answers once the
projection applied the event.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import msgspec

from contracts.events.registry import ArtifactPromoted
from contracts.events.releases import Blocker
from contracts.rpc.registry import Artifact, ArtifactPromoteRequest, Repository, RepositoryRef
from services.scanner.registry import store
from services.scanner.registry.artifacts import ArtifactHandlers
from services.scanner.registry.domain import FieldProblem, artifact_ref, matching_block
from services.scanner.registry.errors import (
    ArtifactNotFound,
    OverrideNotAllowed,
    PromotionBlocked,
    RepositoryFormatMismatch,
    RepositoryNotFound,
    invalid,
)
from services.scanner.registry.handlers import new_hex, repo_lock
from shared.rpc import CallContext

APPROVER = "APPROVER"


@dataclass
class PromotionHandlers(ArtifactHandlers):
    async def promote(self, request: ArtifactPromoteRequest, ctx: CallContext) -> Artifact:
        return await self._once(  # type: ignore[no-any-return]
            ctx,
            lambda: self._promote(request, ctx),
            lambda applied: self._artifact(applied.aggregate_id),
        )

    async def _promote(self, request: ArtifactPromoteRequest, ctx: CallContext) -> Artifact:
        body = request.body
        if body.override and APPROVER not in ctx.roles:
            raise OverrideNotAllowed("promoting over a NO_SHIP decision needs the APPROVER role")
        if body.override and body.reason is None:
            raise invalid([FieldProblem("$.reason", "an override names its reason")])
        source = await store.artifact_by_id(self.pool, request.id)
        if source is None or (
            request.allowed_project is not None and source.project_id != request.allowed_project
        ):
            raise ArtifactNotFound(f"no artifact {request.id!r}")
        target = await self._target(body.to_repo, source, request.allowed_project)
        if target.format != source.format:
            raise RepositoryFormatMismatch(
                f"{source.id} is a {source.format} artifact; {target.slug} is a "
                f"{target.format} repository"
            )
        copy_id = "art_" + new_hex(ctx.command_id, "promotion")
        async with self._locked(repo_lock(target.id)) as conn:
            target = await self._repository(target.id, conn)
            source = await self._artifact(source.id)
            firewall = await self._firewall_blockers(source)
            if firewall:
                raise _blocked(source, firewall, "blocked or quarantined")
            decision = request.decision
            overriding = decision.decision == "NO_SHIP"
            if overriding and not body.override:
                raise _blocked(source, decision.blockers, "its release decision is NO_SHIP")
            await self._check_path_free(conn, target, source.path)
            await self._check_quota(target, source.size, principal=ctx.actor, ctx=ctx)
            await self._emit(
                ArtifactPromoted(
                    id=copy_id,
                    source_artifact_id=source.id,
                    from_repo_id=source.repo_id,
                    to_repo_id=target.id,
                    to_project_id=target.project_id,
                    digest=source.digest,
                    override_reason=body.reason if overriding else None,
                    reason=body.reason,
                    decision=decision.decision,
                    blockers=list(decision.blockers),
                    path=source.path,
                ),
                aggregate=f"artifact:{copy_id}",
                ctx=ctx,
            )
        return await self._artifact(copy_id)

    async def _target(
        self, to_repo: str, source: Artifact, allowed_project: str | None
    ) -> Repository:
        """``to_repo``: a repository id, or a slug in the artifact's project."""
        if to_repo.startswith("repo_"):
            ref = RepositoryRef(id=to_repo)
        else:
            ref = RepositoryRef(project_id=source.project_id, slug=to_repo)
        try:
            found = await self._resolve(ref)
        except RepositoryNotFound:
            found = None
        if found is None or (allowed_project is not None and found.project_id != allowed_project):
            raise invalid(
                [FieldProblem("$.to_repo", f"no repository {to_repo!r}")],
                code="unknown_repository",
            )
        return found

    async def _firewall_blockers(self, artifact: Artifact) -> list[Blocker]:
        facts = store.facts_of(artifact)
        ref = artifact_ref(facts)
        rows = await store.candidate_blocks(
            self.pool, digests=[artifact.digest], purl_keys=[ref.key] if ref else []
        )
        found: list[Blocker] = []
        rule = matching_block([r.rule for r in rows], facts, now=dt.datetime.now(dt.UTC))
        if rule is not None:
            block = next(r.block for r in rows if r.block.id == rule.id)
            found.append(
                Blocker(
                    code="artifact_blocked",
                    message=f"{artifact.path} is blocked: {block.reason}",
                    ref=block.id,
                )
            )
        if artifact.quarantined:
            found.append(
                Blocker(
                    code="artifact_quarantined",
                    message=f"{artifact.path} is in quarantine (scan {artifact.scan_status})",
                    ref=artifact.id,
                )
            )
        return found


def _blocked(artifact: Artifact, blockers: list[Blocker], why: str) -> PromotionBlocked:
    return PromotionBlocked(
        f"{artifact.id} may not be promoted: {why} ({len(blockers)} blocker(s))",
        extra={"blockers": [msgspec.to_builtins(b) for b in blockers]},
    )
