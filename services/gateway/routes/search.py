"""``GET /api/v1/search?q=&kind=&cursor=&limit=``: one ranked search over projects and the
git repositories they list (the gateway's read model) and registry repositories, artifacts,
components of every project's latest snapshot and advisories (the scanner's, asked over
``svc.scanner.search``). Both lists are ranked alike (``shared.search``) and merged here.

``q``: 2 to 200 characters (after trimming spaces), else 422. ``kind``: any of project,
git_repo, repository, artifact, component, advisory (repeated or comma-separated; default
all). A project-scoped key finds only its own project, its git repos, registry repositories,
artifacts and components; advisories are global. Any role may search.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import msgspec
from aiohttp import web

from contracts.rpc import search as rpc
from services.gateway.adapters import search_read
from services.gateway.deps import deps_of
from services.gateway.domain.errors import FieldInvalid
from services.gateway.routes._upstream import ask
from services.gateway.routing import READ_ROLES, RequestContext, Route
from shared.http import json_response
from shared.pagination import DEFAULT_LIMIT, Limit, decode_cursor, encode_cursor
from shared.search import QUERY_MAX, QUERY_MIN, KindQuery, SearchKey, key_of, merge_ranked
from shared.search import trigram_schema as find_trigram_schema

_OWN_KINDS = {"project": search_read.projects, "git_repo": search_read.git_repos}


class SearchQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    q: Annotated[
        str,
        msgspec.Meta(
            min_length=QUERY_MIN,
            max_length=QUERY_MAX,
            description=f"What to find: {QUERY_MIN} to {QUERY_MAX} characters",
        ),
    ]
    kind: (
        list[
            Annotated[
                str,
                msgspec.Meta(
                    max_length=200,
                    description="project, git_repo, repository, artifact, component, "
                    "advisory (repeated or comma-separated; default: all)",
                ),
            ]
        ]
        | None
    ) = None
    cursor: Annotated[str, msgspec.Meta(max_length=512)] | None = None
    limit: Limit = DEFAULT_LIMIT


def _text(query: SearchQuery) -> str:
    q = query.q.strip()
    if not QUERY_MIN <= len(q) <= QUERY_MAX:
        raise FieldInvalid("q", f"{QUERY_MIN} to {QUERY_MAX} characters besides spaces")
    return q


def _kinds(query: SearchQuery) -> list[str]:
    if not query.kind:
        return list(rpc.SEARCH_KINDS)
    named = [part.strip() for value in query.kind for part in value.split(",") if part.strip()]
    unknown = sorted({kind for kind in named if kind not in rpc.SEARCH_KINDS})
    if unknown or not named:
        raise FieldInvalid(
            "kind", f"unknown kind {unknown[0]!r}" if unknown else "name at least one kind"
        )
    return list(dict.fromkeys(named))


def _after(query: SearchQuery) -> SearchKey | None:
    if query.cursor is None:
        return None
    score_key, kind, hit_id = decode_cursor(query.cursor, kinds=(int, str, str))
    return (int(score_key), str(kind), str(hit_id))


async def search(ctx: RequestContext) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, SearchQuery)
    q, kinds, after = _text(query), _kinds(query), _after(query)
    scope = ctx.principal.project_id if ctx.principal else None
    project_ids = [scope] if scope is not None else None
    pool = deps_of(ctx).pool
    schema = await find_trigram_schema(pool)
    limit = query.limit + 1
    own: list[KindQuery] = [
        _OWN_KINDS[kind](q, schema, project_ids=project_ids, after=after, limit=limit)
        for kind in kinds
        if kind in _OWN_KINDS
    ]
    theirs = [kind for kind in kinds if kind in rpc.SCANNER_KINDS]
    lists = await asyncio.gather(*(kind_query.run(pool) for kind_query in own))
    mode: rpc.SearchMode = "substring" if schema is None else "trigram"
    if theirs:
        request = rpc.SearchRequest(
            q=q,
            kinds=theirs,  # type: ignore[arg-type]
            project_ids=project_ids,
            after=rpc.SearchAfter(score_key=after[0], kind=after[1], id=after[2])
            if after
            else None,
            limit=query.limit,
        )
        reply = await ask(ctx, rpc.SERVICE, rpc.SEARCH, request, rpc.SearchReply)
        lists.append(reply.items)
        if reply.mode == "substring":
            mode = "substring"
    items, more = merge_ranked(lists, query.limit)
    next_cursor = encode_cursor(list(key_of(items[-1]))) if more and items else None
    return json_response(rpc.SearchPage(items=items, next_cursor=next_cursor, mode=mode))


ROUTES: list[Route] = [
    Route(
        method="GET",
        path="/api/v1/search",
        handler=search,
        roles=READ_ROLES,
        summary="Search projects, their git repos, registry repositories, artifacts (name, "
        "path, purl), components of the latest snapshots (name, purl) and advisories (id, "
        "aliases, summary): ranked exact, then prefix, then substring, then fuzzy (trigram: "
        "typos tolerated when the database has pg_trgm, see mode), best first, cursor "
        "paginated. A project-scoped key finds its own project's resources and advisories",
        tag="search",
        query=SearchQuery,
        response=rpc.SearchPage,
        errors=(422, 502, 503, 504),
        allow_project_scoped=True,
    ),
]
