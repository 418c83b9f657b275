"""``svc.scanner.search``: the scanner's kinds of ``GET /api/v1/search``, each asked with the
same cursor and ``limit + 1``, merged into one ranked list for the gateway to merge again."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg

from contracts.rpc.search import SearchReply, SearchRequest
from services.scanner.search import queries
from shared.rpc import CallContext
from shared.search import KindQuery, SearchKey, merge_ranked, trigram_schema

_SCOPED_KINDS = {
    "repository": queries.repositories,
    "artifact": queries.artifacts,
    "component": queries.components,
}


@dataclass
class SearchHandlers:
    pool: asyncpg.Pool

    async def search(self, request: SearchRequest, _ctx: CallContext) -> SearchReply:
        schema = await trigram_schema(self.pool)
        after: SearchKey | None = (
            (request.after.score_key, request.after.kind, request.after.id)
            if request.after is not None
            else None
        )
        q, scope, limit = request.q, request.project_ids, request.limit + 1
        built: list[KindQuery] = []
        for kind in dict.fromkeys(request.kinds):
            if kind == "advisory":  # global: no project scope
                built.append(queries.advisories(q, schema, after=after, limit=limit))
                continue
            build = _SCOPED_KINDS[kind]
            built.append(build(q, schema, project_ids=scope, after=after, limit=limit))
        pages = await asyncio.gather(*(query.run(self.pool) for query in built))
        items, _ = merge_ranked(pages, request.limit + 1)
        return SearchReply(items=items, mode="substring" if schema is None else "trigram")
