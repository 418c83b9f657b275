"""``POST /api/v1/artifacts/{id}/promote {to_repo, reason?, override?}``: copy an artifact by
digest into another repository of the same format (staging → release).

The scanner owns artifacts and does the copy (``svc.scanner.artifact_promote``); the
refusal on a NO_SHIP decision needs the artifact's release decision, which release-decision
owns. Services never call each other, so the gateway asks release-decision for it
(``artifact_decision``, as ``GET /api/v1/releases/decision?artifact=`` does) and passes it
to the scanner with the command. 201 with the copy and its ``Location``; 409
``promotion_blocked`` with ``blockers`` (a NO_SHIP decision; a blocked or quarantined
artifact, which no override promotes), 403 ``override_not_allowed`` (override without the
APPROVER role), 409 ``artifact_exists`` (the destination path is taken), 400
``repository_format_mismatch``, 422 ``unknown_repository``.
"""

from __future__ import annotations

import re

from aiohttp import web

from contracts.rpc import registry as rpc
from contracts.rpc import release_decision as decisions
from services.gateway.routes._upstream import ask, path_id
from services.gateway.routing import RequestContext, Route, roles
from shared.errors import NotFound
from shared.http import json_response

PROMOTERS = roles("ADMIN", "OPERATOR", "APPROVER")
_ARTIFACT_ID = re.compile(r"art_[0-9a-f]{32}")


class ArtifactNotFound(NotFound):
    code, title = "artifact_not_found", "No such artifact"


def _scope(ctx: RequestContext) -> str | None:
    return ctx.principal.project_id if ctx.principal else None


async def promote_artifact(ctx: RequestContext) -> web.StreamResponse:
    body = ctx.body
    assert isinstance(body, rpc.ArtifactPromoteBody)
    artifact_id = path_id(ctx, "id", _ARTIFACT_ID, ArtifactNotFound, "artifact")
    scope = _scope(ctx)
    artifact = await ask(
        ctx, rpc.SERVICE, rpc.ARTIFACT_GET, rpc.ArtifactGetRequest(id=artifact_id), rpc.Artifact
    )
    if scope is not None and artifact.project_id != scope:
        raise ArtifactNotFound(f"no artifact {artifact_id!r}")
    decision = await ask(
        ctx,
        decisions.SERVICE,
        decisions.ARTIFACT_DECISION,
        decisions.ArtifactDecisionRequest(
            digest=artifact.digest, project_ids=[artifact.project_id]
        ),
        decisions.DecisionView,
    )
    request = rpc.ArtifactPromoteRequest(
        id=artifact.id,
        body=body,
        decision=rpc.PromotionDecision(decision=decision.decision, blockers=decision.blockers),
        allowed_project=scope,
    )
    copy = await ask(ctx, rpc.SERVICE, rpc.ARTIFACT_PROMOTE, request, rpc.Artifact)
    return json_response(copy, status=201, headers={"Location": f"/api/v1/artifacts/{copy.id}"})


ROUTES: list[Route] = [
    Route(
        method="POST",
        path="/api/v1/artifacts/{id}/promote",
        handler=promote_artifact,
        roles=PROMOTERS,
        summary="Promote an artifact: copy it by digest into another repository of the same "
        "format (to_repo: an id, or a slug of the artifact's project) → 201 with the copy "
        "(artifact.promoted). Refused 409 promotion_blocked with the blockers when its "
        "release decision is NO_SHIP (an APPROVER may override with override: true and a "
        "reason, recorded in the event) or when it is blocked or quarantined (never "
        "overridden); 403 override_not_allowed; 409 artifact_exists (path taken); 400 "
        "repository_format_mismatch; 422 unknown_repository; 404 artifact_not_found",
        tag="registry",
        body=rpc.ArtifactPromoteBody,
        response=rpc.Artifact,
        response_status=201,
        errors=(400, 403, 409, 413, 422, 404, 502, 503, 504, 507),
        allow_project_scoped=True,
    ),
]
