"""GitHub's commits API over signature-verifier's git mirrors.

* ``GET /api/v1/repos/{owner}/{repo}/commits?sha=&path=&author=&since=&until=&page=&per_page=``:
  a JSON array, newest first as ``git log``; ``Link`` carries ``rel="next"`` (when another
  page exists) and ``rel="prev"`` (after page 1), never ``last`` (counting would walk the
  whole history). ``since``/``until`` compare with the committer date, as ``git log
  --since/--until`` does. Unknown query parameters are ignored, as GitHub does.
* ``GET /api/v1/repos/{owner}/{repo}/commits/{sha}``: one commit by its id or an
  unambiguous prefix (4 hex digits or more), with its files and stats, and — stitched in from
  release-decision — ``decision: {decision, blockers}`` when the commit was decided (left
  out when it was not, or when release-decision does not answer: a commit read never fails
  for a decision).

Every role reads. A project-scoped key sees only the repos its project lists (another repo
answers 404 ``repo_not_found``, as an unknown one). A repo some project lists but whose mirror
is not configured (or not yet fetched, or empty) lists ``[]``; a repo nobody lists is 404.

The owner's answers are kept hot (``services.gateway.commits_cache``), after the scope check
and without the decision, which is stitched in per read.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, TypeVar

import msgspec
from aiohttp import web
from multidict import MultiDict
from yarl import URL

from contracts.events.scans import Repo
from contracts.rpc import signatures as rpc
from contracts.rpc.release_decision import DecisionRequest
from services.gateway.adapters.read_model import projects_listing_repo
from services.gateway.commits_cache import (
    BYPASS,
    COMMITS_FEED_KEY,
    HIT,
    MISS,
    CommitsCache,
    CommitsFeed,
    ListedPage,
    ReadStamp,
    commit_key,
    list_key,
)
from services.gateway.decision_reads import read_decision
from services.gateway.deps import deps_of
from services.gateway.routes._upstream import RepoNotVisible, ask, check_repo_scope
from services.gateway.routing import READ_ROLES, RequestContext, Route
from shared.errors import GatehouseError, NotFound, ValidationFailed
from shared.http import json_response
from shared.logging import get_logger

log = get_logger(__name__)

MIRROR_NOT_FOUND = "mirror_not_found"
RFC3339 = "RFC 3339 date-time with its offset; compared with the committer date (git log)"


class CommitsQuery(msgspec.Struct, frozen=True, kw_only=True):
    sha: (
        Annotated[
            rpc.Revision,
            msgspec.Meta(
                description="Branch, tag or commit (prefix) to start from; default: "
                "the repository's default branch"
            ),
        ]
        | None
    ) = None
    path: (
        Annotated[
            rpc.RepoPath,
            msgspec.Meta(description="Only commits touching this path (git log -- <path>)"),
        ]
        | None
    ) = None
    author: (
        Annotated[
            str,
            msgspec.Meta(
                min_length=1,
                max_length=255,
                description="Substring (any case) of the author's name or e-mail",
            ),
        ]
        | None
    ) = None
    since: Annotated[dt.datetime, msgspec.Meta(tz=True, description=RFC3339)] | None = None
    until: Annotated[dt.datetime, msgspec.Meta(tz=True, description=RFC3339)] | None = None
    page: Annotated[int, msgspec.Meta(ge=1, le=1_000_000, description="1-based")] = 1
    per_page: Annotated[
        int, msgspec.Meta(ge=1, le=rpc.PER_PAGE_MAX, description="1..100, default 30")
    ] = rpc.PER_PAGE_DEFAULT


class _RepoPath(msgspec.Struct, frozen=True):
    repo: Repo


class _ShaPath(msgspec.Struct, frozen=True):
    sha: rpc.ShaOrPrefix


def _path_value(type_: type[msgspec.Struct], value: dict[str, str]) -> msgspec.Struct:
    try:
        return msgspec.convert(value, type_)
    except msgspec.ValidationError as exc:
        name = next(iter(value))
        error = {"field": f"$.{name}", "message": str(exc), "in": "path"}
        raise ValidationFailed(f"path parameter {name}: {exc}", extra={"errors": [error]}) from exc


async def _repo(ctx: RequestContext) -> str:
    info = ctx.request.match_info
    parsed = _path_value(_RepoPath, {"repo": f"{info['owner']}/{info['repo']}"})
    assert isinstance(parsed, _RepoPath)
    await check_repo_scope(ctx, parsed.repo)
    return parsed.repo


async def _listed(ctx: RequestContext, repo: str) -> bool:
    return bool(await projects_listing_repo(deps_of(ctx).pool, repo))


def _page_url(ctx: RequestContext, page: int) -> str:
    request = ctx.request
    base = deps_of(ctx).settings.public_url.rstrip("/") or f"{request.scheme}://{request.host}"
    query = MultiDict(request.query)
    query["page"] = str(page)
    return str(URL(base + request.rel_url.raw_path).with_query(query))


def link_header(ctx: RequestContext, *, page: int, has_next: bool) -> str | None:
    links = []
    if has_next:
        links.append(f'<{_page_url(ctx, page + 1)}>; rel="next"')
    if page > 1:
        links.append(f'<{_page_url(ctx, page - 1)}>; rel="prev"')
    return ", ".join(links) or None


_ENCODER = msgspec.json.Encoder()
_READ_MODEL_BEHIND = "read_model_behind"
Req = TypeVar("Req", rpc.CommitsListRequest, rpc.CommitGetRequest)
Resp = TypeVar("Resp", rpc.CommitsPage, rpc.CommitDetailView)


def _cache(ctx: RequestContext) -> CommitsCache | None:
    """The hot copy when it may serve and keep answers now (on, and its feed live)."""
    feed = ctx.runtime.state.get(COMMITS_FEED_KEY)
    if not isinstance(feed, CommitsFeed):
        return None
    feed.check_connection()
    return feed.cache if feed.cache.enabled else None


async def _from_owner(
    ctx: RequestContext,
    operation: str,
    request: Req,
    response_type: type[Resp],
    stamp: ReadStamp | None,
) -> tuple[Resp, bool]:
    """The owner's answer, and whether it may be kept: asked with the positions the cache
    saw change the repo, so it is not older than them. An owner whose read models lag past
    its wait answers as they are: served, never kept."""
    if stamp is None:
        return await ask(ctx, rpc.SERVICE, operation, request, response_type), False
    after = msgspec.structs.replace(
        request, verifications_at=stamp.verifications_at, mirror_at=stamp.mirror_at
    )
    try:
        return await ask(ctx, rpc.SERVICE, operation, after, response_type), True
    except GatehouseError as exc:
        if exc.code != _READ_MODEL_BEHIND:
            raise
    return await ask(ctx, rpc.SERVICE, operation, request, response_type), False


async def _listed_page(ctx: RequestContext, request: rpc.CommitsListRequest) -> ListedPage:
    cache = _cache(ctx)
    if cache is None:
        BYPASS.inc()
        page, _ = await _from_owner(ctx, rpc.COMMITS_LIST, request, rpc.CommitsPage, None)
        return ListedPage(_ENCODER.encode(page.items), page.has_next)
    key = list_key(request)
    found = cache.get(key)
    if found is not None:
        HIT.inc()
        return found  # type: ignore[no-any-return]
    MISS.inc()
    stamp = cache.stamp(request.repo)
    page, keep = await _from_owner(ctx, rpc.COMMITS_LIST, request, rpc.CommitsPage, stamp)
    listed = ListedPage(_ENCODER.encode(page.items), page.has_next)
    if keep:
        cache.offer(key, listed, stamp=stamp)
    return listed


async def list_commits(ctx: RequestContext) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, CommitsQuery)
    repo = await _repo(ctx)
    request = rpc.CommitsListRequest(
        repo=repo,
        sha=query.sha,
        path=query.path,
        author=query.author,
        since=query.since,
        until=query.until,
        page=query.page,
        per_page=query.per_page,
    )
    try:
        listed = await _listed_page(ctx, request)
    except NotFound as exc:
        if exc.code != MIRROR_NOT_FOUND:
            raise
        if not await _listed(ctx, repo):
            raise RepoNotVisible(f"no project lists {repo}") from exc
        listed = ListedPage(b"[]", False)
    link = link_header(ctx, page=query.page, has_next=listed.has_next)
    return web.Response(
        body=listed.body,
        headers={"Link": link} if link else None,
        content_type="application/json",
    )


async def _commit_detail(
    ctx: RequestContext, request: rpc.CommitGetRequest
) -> rpc.CommitDetailView:
    cache = _cache(ctx)
    key = commit_key(request.repo, request.sha)
    if cache is None:
        BYPASS.inc()
        commit, _ = await _from_owner(ctx, rpc.COMMIT_GET, request, rpc.CommitDetailView, None)
        return commit
    if key is not None:
        found = cache.get(key)
        if found is not None:
            HIT.inc()
            return found  # type: ignore[no-any-return]
    MISS.inc()
    stamp = cache.stamp(request.repo)
    commit, keep = await _from_owner(ctx, rpc.COMMIT_GET, request, rpc.CommitDetailView, stamp)
    full = commit_key(request.repo, commit.sha)
    if keep and full is not None:
        cache.offer(full, commit, stamp=stamp)
    return commit


async def _decision(ctx: RequestContext, repo: str, sha: str) -> rpc.CommitDecision | None:
    try:
        view = await read_decision(ctx, DecisionRequest(repo=repo, commit=sha))
    except NotFound:
        return None
    except GatehouseError as exc:
        log.warning("commit_decision_unavailable", repo=repo, code=exc.code)
        return None
    if view.revision == 0:  # never decided: the policy applied to no evidence
        return None
    return rpc.CommitDecision(
        decision=view.decision, blockers=max(view.blocker_total, len(view.blockers))
    )


async def get_commit(ctx: RequestContext) -> web.StreamResponse:
    repo = await _repo(ctx)
    parsed = _path_value(_ShaPath, {"sha": ctx.request.match_info["sha"]})
    assert isinstance(parsed, _ShaPath)
    request = rpc.CommitGetRequest(repo=repo, sha=parsed.sha)
    try:
        commit = await _commit_detail(ctx, request)
    except NotFound as exc:
        if exc.code != MIRROR_NOT_FOUND:
            raise
        if not await _listed(ctx, repo):
            raise RepoNotVisible(f"no project lists {repo}") from exc
        raise NotFound(f"no commit found for SHA {parsed.sha}", code="commit_not_found") from exc
    decision = await _decision(ctx, repo, commit.sha)
    if decision is not None:
        commit = msgspec.structs.replace(commit, decision=decision)
    return json_response(commit)


ROUTES: list[Route] = [
    Route(
        method="GET",
        path="/api/v1/repos/{owner}/{repo}/commits",
        handler=list_commits,
        roles=READ_ROLES,
        summary="The repository's commits as GitHub lists them (git log order), each with "
        "its signature verification; Link: rel=next/prev (never last)",
        tag="commits",
        query=CommitsQuery,
        response=list[rpc.CommitView],
        errors=(404, 502, 503, 504),
        allow_project_scoped=True,
    ),
    Route(
        method="GET",
        path="/api/v1/repos/{owner}/{repo}/commits/{sha}",
        handler=get_commit,
        roles=READ_ROLES,
        summary="One commit by id or unambiguous prefix: files (renames, copies), stats, "
        "verification, and its release decision when one was made",
        tag="commits",
        response=rpc.CommitDetailView,
        errors=(404, 502, 503, 504),
        allow_project_scoped=True,
    ),
]
