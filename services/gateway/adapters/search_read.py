"""The gateway's kinds of ``GET /api/v1/search``: projects (slug, name) and the git
repositories they list (``gateway.project_repos``), ranked as ``shared.search`` ranks every
kind. Statements are built by pure functions (a test EXPLAINs them) and run here."""

from __future__ import annotations

import asyncpg

from contracts.rpc.search import SearchHit
from shared.search import KindQuery, KindStatement, SearchKey


def projects(
    q: str,
    trigram_schema: str | None,
    *,
    project_ids: list[str] | None,
    after: SearchKey | None,
    limit: int,
) -> KindQuery:
    st = KindStatement.start("project", q, trigram_schema)
    m = st.m
    fields = ("p.slug", "p.name")
    inner = (
        f"SELECT p.id, p.slug, p.name, p.archived_at, {m.score_key(fields)} AS score_key "
        "FROM gateway.projects p WHERE p.id IN ("
        f"{m.candidates('SELECT id', 'gateway.projects', ('slug', 'name'))}) "
        f"AND {st.scoped('p.id', project_ids)}"
    )

    def hit(row: asyncpg.Record) -> SearchHit:
        archived = " (archived)" if row["archived_at"] is not None else ""
        return st.hit(
            row,
            id=row["id"],
            title=row["name"],
            subtitle=f"project {row['slug']}{archived}",
            project_id=row["id"],
            url=f"/api/v1/projects/{row['id']}",
        )

    return st.query(inner, hit, after=after, limit=limit)


def git_repos(
    q: str,
    trigram_schema: str | None,
    *,
    project_ids: list[str] | None,
    after: SearchKey | None,
    limit: int,
) -> KindQuery:
    st = KindStatement.start("git_repo", q, trigram_schema)
    m = st.m
    # One hit per repository (GitHub compares names in any case), however many projects
    # list it; project_id is the first of them.
    inner = (
        "SELECT lower(r.repo) AS id, min(r.repo) AS repo, min(r.project_id) AS project_id, "
        f"count(*) AS projects, max({m.score_key(['r.repo'])}) AS score_key "
        "FROM gateway.project_repos r WHERE (r.project_id, r.repo) IN ("
        f"{m.candidates('SELECT project_id, repo', 'gateway.project_repos', ('repo',))}) "
        f"AND {st.scoped('r.project_id', project_ids)} GROUP BY lower(r.repo)"
    )

    def hit(row: asyncpg.Record) -> SearchHit:
        listed = row["projects"]
        return st.hit(
            row,
            id=row["id"],
            title=row["repo"],
            subtitle=f"git repository listed by {listed} project{'s' if listed > 1 else ''}",
            project_id=row["project_id"],
            url=f"/api/v1/repos/{row['repo']}/commits",
        )

    return st.query(inner, hit, after=after, limit=limit)
