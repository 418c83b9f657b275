"""The gateway's kinds of ``GET /api/v1/search``: projects (slug, name) and the git
repositories they list (``gateway.project_repos``), ranked as ``shared.search`` ranks every
kind. Statements are built by pure functions (a test EXPLAINs them) and run here."""

from __future__ import annotations

import asyncpg

from contracts.rpc.search import SearchHit
from shared.search import KindQuery, Matcher, Params, SearchKey, paged, scoped, score_of


def projects(
    q: str,
    trigram_schema: str | None,
    *,
    project_ids: list[str] | None,
    after: SearchKey | None,
    limit: int,
) -> KindQuery:
    params = Params()
    m = Matcher.create(q, trigram_schema, params)
    fields = ("p.slug", "p.name")
    inner = (
        f"SELECT p.id, p.slug, p.name, p.archived_at, {m.score_key(fields)} AS score_key "
        "FROM gateway.projects p WHERE p.id IN ("
        f"{m.candidates('SELECT id', 'gateway.projects', ('slug', 'name'))}) "
        f"AND {scoped(params, 'p.id', project_ids)}"
    )

    def hit(row: asyncpg.Record) -> SearchHit:
        archived = " (archived)" if row["archived_at"] is not None else ""
        return SearchHit(
            kind="project",
            id=row["id"],
            title=row["name"],
            subtitle=f"project {row['slug']}{archived}",
            project_id=row["id"],
            url=f"/api/v1/projects/{row['id']}",
            score=score_of(row["score_key"]),
            score_key=row["score_key"],
        )

    return KindQuery(paged("project", inner, params, after, limit), params.values, hit, m.mode)


def git_repos(
    q: str,
    trigram_schema: str | None,
    *,
    project_ids: list[str] | None,
    after: SearchKey | None,
    limit: int,
) -> KindQuery:
    params = Params()
    m = Matcher.create(q, trigram_schema, params)
    # One hit per repository (GitHub compares names in any case), however many projects
    # list it; project_id is the first of them.
    inner = (
        "SELECT lower(r.repo) AS id, min(r.repo) AS repo, min(r.project_id) AS project_id, "
        f"count(*) AS projects, max({m.score_key(['r.repo'])}) AS score_key "
        "FROM gateway.project_repos r WHERE (r.project_id, r.repo) IN ("
        f"{m.candidates('SELECT project_id, repo', 'gateway.project_repos', ('repo',))}) "
        f"AND {scoped(params, 'r.project_id', project_ids)} GROUP BY lower(r.repo)"
    )

    def hit(row: asyncpg.Record) -> SearchHit:
        listed = row["projects"]
        return SearchHit(
            kind="git_repo",
            id=row["id"],
            title=row["repo"],
            subtitle=f"git repository listed by {listed} project{'s' if listed > 1 else ''}",
            project_id=row["project_id"],
            url=f"/api/v1/repos/{row['repo']}/commits",
            score=score_of(row["score_key"]),
            score_key=row["score_key"],
        )

    return KindQuery(paged("git_repo", inner, params, after, limit), params.values, hit, m.mode)
