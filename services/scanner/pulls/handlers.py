"""``svc.scanner.who_pulled``: the downloads of a package (every version, or one) or of a
digest, newest first, cursor-paginated, within the caller's projects."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from contracts.rpc.pulls import PullPage, WhoPulledRequest
from services.scanner.pulls import store
from services.scanner.registry.domain import FieldProblem, purl_ref
from services.scanner.registry.errors import invalid
from shared.pagination import seq_cursor, seq_page
from shared.rpc import CallContext

INVALID = "invalid_who_pulled"


@dataclass
class PullHandlers:
    pool: asyncpg.Pool

    async def who_pulled(self, request: WhoPulledRequest, _ctx: CallContext) -> PullPage:
        problems: list[FieldProblem] = []
        if (request.purl is None) == (request.digest is None):
            message = "give exactly one of purl and digest"
            problems += [FieldProblem("$.purl", message), FieldProblem("$.digest", message)]
        package = purl_ref(request.purl) if request.purl is not None else None
        if request.purl is not None and package is None:
            problems.append(FieldProblem("$.purl", "not a package URL"))
        if request.since and request.until and request.since >= request.until:
            problems.append(FieldProblem("$.until", "must be after since"))
        if problems:
            raise invalid(problems, code=INVALID)
        before = seq_cursor(request.cursor)
        rows = await store.who_pulled(
            self.pool,
            digest=request.digest,
            package=package,
            since=request.since,
            until=request.until,
            project_ids=request.project_ids,
            before_seq=before,
            limit=request.limit + 1,
        )
        items, cursor = seq_page(rows, request.limit)
        return PullPage(items=items, next_cursor=cursor)
