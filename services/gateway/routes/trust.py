"""Trust outputs of the release gate: the badge, signed attestations and the keys.

* ``GET|HEAD /api/v1/trust/badge?repo=&commit=`` (public): an SVG badge, ``Assured`` (SHIP),
  ``Blocked`` (NO_SHIP) or ``Unknown`` (no decision yet, unknown repo, or a repo the caller
  may not see — see ``services.gateway.badge``). ``commit`` defaults to HEAD. ``ETag`` of
  the bytes (If-None-Match → 304). Caching: an anonymous answer is ``public, max-age=60``
  whatever the repo (so even headers never tell a private repo from an unknown one); an
  answer to a request carrying a token is ``private, max-age=60`` (it depends on the token:
  shared caches must not keep it). ``Vary: Authorization`` on both.
* ``GET /api/v1/releases/decision/attestation?repo=&commit=``: the decision as an in-toto
  Statement in a DSSE envelope, signed by release-decision (every read role; a
  project-scoped key only for repos of its project).
* ``GET /api/v1/trust/keys`` (public: verifiers need it without credentials): the Ed25519
  public keys, PEM and JWK, the active one first.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web

from contracts.events.scans import Repo
from contracts.rpc import trust as rpc
from contracts.rpc.release_decision import CommitRef, DecisionRequest
from services.gateway.adapters.read_model import projects_listing_repo
from services.gateway.badge import BadgeState, may_see, render
from services.gateway.decision_reads import read_decision
from services.gateway.deps import deps_of
from services.gateway.dispatch import authenticate
from services.gateway.domain.etag import none_match
from services.gateway.routes._upstream import ask, check_repo_scope
from services.gateway.routing import READ_ROLES, Principal, RequestContext, Route
from shared.errors import GatehouseError, NotFound
from shared.http import json_response

BADGE_MAX_AGE_SECONDS = 60
KEYS_MAX_AGE_SECONDS = 300
SVG = "image/svg+xml"


class BadgeQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    repo: Repo
    commit: Annotated[CommitRef, msgspec.Meta(description="Default HEAD")] = "HEAD"


# ---- badge ------------------------------------------------------------------------------------
async def _optional_principal(ctx: RequestContext) -> Principal | None:
    """The caller's key when it sent a usable one; a bad token is treated as none (an image
    tag cannot show a 401, and the answer must not differ from an unknown repo's)."""
    if "Authorization" not in ctx.request.headers:
        return None
    try:
        return await authenticate(ctx.request, deps_of(ctx))
    except GatehouseError:
        return None


async def _badge_state(ctx: RequestContext, query: BadgeQuery) -> tuple[BadgeState, bool]:
    """(state, cacheable): an upstream failure shows Unknown, but not for a minute."""
    principal = await _optional_principal(ctx)
    projects = await projects_listing_repo(deps_of(ctx).pool, query.repo)
    if not may_see(principal, projects):
        return "Unknown", True
    try:
        view = await read_decision(ctx, DecisionRequest(repo=query.repo, commit=query.commit))
    except NotFound:  # repo_not_found, head_unknown
        return "Unknown", True
    except GatehouseError:
        return "Unknown", False
    if view.revision == 0:
        return "Unknown", True
    return ("Assured" if view.decision == "SHIP" else "Blocked"), True


async def get_badge(ctx: RequestContext) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, BadgeQuery)
    state, cacheable = await _badge_state(ctx, query)
    badge = render(state)
    scope = "private" if "Authorization" in ctx.request.headers else "public"
    headers = {
        "ETag": badge.etag,
        "Cache-Control": f"{scope}, max-age={BADGE_MAX_AGE_SECONDS}" if cacheable else "no-store",
        "Vary": "Authorization",
    }
    if none_match(ctx.request.headers.get("If-None-Match"), badge.etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=badge.body, headers=headers, content_type=SVG)


# ---- attestation and keys ---------------------------------------------------------------------
async def get_attestation(ctx: RequestContext) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, rpc.AttestationRequest)
    await check_repo_scope(ctx, query.repo)
    envelope = await ask(ctx, rpc.SERVICE, rpc.ATTESTATION_GET, query, rpc.DsseEnvelope)
    return json_response(envelope, headers={"Cache-Control": "no-store"})


async def get_keys(ctx: RequestContext) -> web.StreamResponse:
    keys = await ask(ctx, rpc.SERVICE, rpc.KEYS_GET, rpc.KeysRequest(), rpc.TrustKeys)
    return json_response(keys, headers={"Cache-Control": f"max-age={KEYS_MAX_AGE_SECONDS}"})


_BADGE_SUMMARY = (
    "The repo's trust badge (SVG): Assured (SHIP), Blocked (NO_SHIP) or Unknown (no "
    "decision, unknown repo, or a private project's repo without a read-role token). "
    "commit defaults to HEAD (the newest commit seen on the default branch). ETag + "
    "If-None-Match; Cache-Control public, max-age=60 (private with a token)"
)

ROUTES: list[Route] = [
    Route(
        method=method,
        path="/api/v1/trust/badge",
        handler=get_badge,
        roles=None,
        summary=_BADGE_SUMMARY,
        tag="trust",
        query=BadgeQuery,
        response_media_type=SVG,
    )
    for method in ("GET", "HEAD")
] + [
    Route(
        method="GET",
        path="/api/v1/releases/decision/attestation",
        handler=get_attestation,
        roles=READ_ROLES,
        summary="The current decision of a commit as an in-toto Statement v1 (the Gatehouse "
        "release-decision predicate, subject git+<repo> with digest gitCommit) in a DSSE "
        "envelope signed with the server's Ed25519 key (see /api/v1/trust/keys)",
        tag="trust",
        query=rpc.AttestationRequest,
        response=rpc.DsseEnvelope,
        errors=(404, 502, 503, 504),
        allow_project_scoped=True,
    ),
    Route(
        method="GET",
        path="/api/v1/trust/keys",
        handler=get_keys,
        roles=None,
        summary="The public keys that verify attestations (keyid = sha256 of the raw key; "
        "PEM and JWK), the active one first",
        tag="trust",
        response=rpc.TrustKeys,
        errors=(502, 503, 504),
    ),
]
