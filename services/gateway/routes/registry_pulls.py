"""Who pulled (owned by the scanner, asked over ``svc.scanner.who_pulled``), at OrbitalReg's
path: ``GET /api/v1/security/who-pulled?purl=|digest=&since=&until=&cursor=&limit=``.

AUDITOR or ADMIN: the answer names principals and client addresses. A project-scoped key
sees its own project's downloads only.
"""

from __future__ import annotations

import datetime as dt

import msgspec
from aiohttp import web

from contracts.events.registry import Purl
from contracts.events.scans import Digest
from contracts.rpc import pulls as rpc
from contracts.rpc.registry import LIMIT_DEFAULT, Cursor, Limit
from services.gateway.routes._upstream import ask
from services.gateway.routing import RequestContext, Route, roles
from shared.http import json_response

PULL_READERS = roles("ADMIN", "AUDITOR")


class WhoPulledQuery(msgspec.Struct, frozen=True, kw_only=True):
    purl: Purl | None = None
    digest: Digest | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    cursor: Cursor | None = None
    limit: Limit = LIMIT_DEFAULT


async def who_pulled(ctx: RequestContext) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, WhoPulledQuery)
    scope = ctx.principal.project_id if ctx.principal else None
    request = rpc.WhoPulledRequest(
        purl=query.purl,
        digest=query.digest,
        since=query.since,
        until=query.until,
        project_ids=[scope] if scope is not None else None,
        cursor=query.cursor,
        limit=query.limit,
    )
    return json_response(await ask(ctx, rpc.SERVICE, rpc.WHO_PULLED, request, rpc.PullPage))


ROUTES: list[Route] = [
    Route(
        method="GET",
        path="/api/v1/security/who-pulled",
        handler=who_pulled,
        roles=PULL_READERS,
        summary="Who downloaded what and when, newest first: by purl (with a version: that "
        "version; without: every version) or by digest (exactly one), within since "
        "(inclusive) and until (exclusive). Each pull names the artifact, the principal "
        "(apikey:…, serviceaccount:… or anonymous) and the client address. 422 "
        "invalid_who_pulled. A project-scoped key sees its project's downloads only",
        tag="registry",
        query=WhoPulledQuery,
        response=rpc.PullPage,
        errors=(422, 502, 503, 504),
        allow_project_scoped=True,
    ),
]
