"""The SQL of the scanner's search kinds: registry repositories (slug), artifacts (name,
path, purl), components of every project's latest snapshot (name, purl) and advisories (id,
aliases, summary).

Every kind is one statement of the same shape: the rows whose fields match (an index
condition of the ``gin_trgm_ops`` indexes of migration 0010 in trigram mode), scored, then
those after the cursor in rank order, ``limit`` of them. Built by pure functions so a test
can EXPLAIN exactly what runs.
"""

from __future__ import annotations

import asyncpg

from contracts.rpc.search import SearchHit
from shared.search import KindQuery, KindStatement, SearchKey

_SUBTITLE_MAX = 300


def _clip(text: str) -> str:
    return text if len(text) <= _SUBTITLE_MAX else text[: _SUBTITLE_MAX - 1] + "…"


# ---- registry repositories -------------------------------------------------------------------
def repositories(
    q: str,
    trigram_schema: str | None,
    *,
    project_ids: list[str] | None,
    after: SearchKey | None,
    limit: int,
) -> KindQuery:
    st = KindStatement.start("repository", q, trigram_schema)
    m = st.m
    inner = (
        "SELECT r.id, r.project_id, r.slug, r.format, r.visibility, r.description, "
        f"{m.score_key(['r.slug'])} AS score_key FROM scanner.registry_repositories r "
        f"WHERE r.id IN ({m.candidates('SELECT id', 'scanner.registry_repositories', ['slug'])}) "
        f"AND {st.scoped('r.project_id', project_ids)}"
    )

    def hit(row: asyncpg.Record) -> SearchHit:
        summary = f"{row['format']} repository, {row['visibility']}"
        if row["description"]:
            summary += f": {row['description']}"
        return st.hit(
            row,
            id=row["id"],
            title=row["slug"],
            subtitle=_clip(summary),
            project_id=row["project_id"],
            url=f"/api/v1/repos/{row['id']}",
        )

    return st.query(inner, hit, after=after, limit=limit)


# ---- artifacts --------------------------------------------------------------------------------
_ARTIFACT_FIELDS = ("a.name", "a.path", "a.purl")
_MATCHED_ARTIFACT_FIELDS = ("name", "path", "purl")


def artifacts(
    q: str,
    trigram_schema: str | None,
    *,
    project_ids: list[str] | None,
    after: SearchKey | None,
    limit: int,
) -> KindQuery:
    st = KindStatement.start("artifact", q, trigram_schema)
    m = st.m
    inner = (
        "SELECT a.id, a.project_id, a.name, a.version, a.path, a.purl, a.format, "
        f"{m.score_key(_ARTIFACT_FIELDS)} AS score_key FROM scanner.registry_artifacts a "
        "WHERE a.id IN ("
        f"{m.candidates('SELECT id', 'scanner.registry_artifacts', _MATCHED_ARTIFACT_FIELDS)}"
        f") AND a.deleted_seq IS NULL AND {st.scoped('a.project_id', project_ids)}"
    )

    def hit(row: asyncpg.Record) -> SearchHit:
        name, version = row["name"], row["version"]
        title = f"{name} {version}" if name and version else name or row["path"]
        return st.hit(
            row,
            id=row["id"],
            title=title,
            subtitle=_clip(row["purl"] or f"{row['format']}: {row['path']}"),
            project_id=row["project_id"],
            url=f"/api/v1/artifacts/{row['id']}",
        )

    return st.query(inner, hit, after=after, limit=limit)


# ---- components of the latest snapshots --------------------------------------------------------
_COMPONENT_FIELDS = ("c.name", "c.purl")


def components(
    q: str,
    trigram_schema: str | None,
    *,
    project_ids: list[str] | None,
    after: SearchKey | None,
    limit: int,
) -> KindQuery:
    st = KindStatement.start("component", q, trigram_schema)
    m = st.m
    # Every project's latest snapshot (scans_snapshots serves the DISTINCT ON), then the
    # components of those scans that match: a component is found once per project, not once
    # per scan that ever listed it.
    inner = (
        "WITH latest AS (SELECT DISTINCT ON (project_id) id, project_id FROM scanner.scans "
        "WHERE status = 'succeeded' AND deleted_at IS NULL AND "
        f"{st.scoped('project_id', project_ids)} ORDER BY project_id, completed_seq DESC) "
        "SELECT c.scan_id || ':' || c.ref AS id, c.scan_id, l.project_id, c.name, c.version, "
        f"c.purl, {m.score_key(_COMPONENT_FIELDS)} AS score_key "
        "FROM scanner.components c JOIN latest l ON l.id = c.scan_id WHERE (c.scan_id, c.ref) "
        f"IN ({m.candidates('SELECT scan_id, ref', 'scanner.components', ('name', 'purl'))})"
    )

    def hit(row: asyncpg.Record) -> SearchHit:
        version = row["version"]
        return st.hit(
            row,
            id=row["id"],
            title=f"{row['name']} {version}" if version else row["name"],
            subtitle=_clip(row["purl"] or "component without a purl"),
            project_id=row["project_id"],
            url=f"/api/v1/projects/{row['project_id']}/components?scan_id={row['scan_id']}",
        )

    return st.query(inner, hit, after=after, limit=limit)


# ---- advisories --------------------------------------------------------------------------------
def advisories(
    q: str,
    trigram_schema: str | None,
    *,
    after: SearchKey | None,
    limit: int,
) -> KindQuery:
    st = KindStatement.start("advisory", q, trigram_schema)
    m = st.m
    # Aliases are an array on the advisory; their matches come from advisory_aliases (one
    # row per alias, indexed), their score from the best element.
    alias_tier = f"COALESCE((SELECT max({m.tier('x.alias')}) FROM unnest(a.aliases) x(alias)), 0)"
    alias_sim = (
        f"COALESCE((SELECT max({m.similarity('x.alias')}) FROM unnest(a.aliases) x(alias)), 0)"
    )
    key = m.score_key_of(
        [m.tier("a.id"), m.tier("a.summary"), alias_tier],
        [m.similarity("a.id"), m.similarity("a.summary"), alias_sim],
    )
    inner = (
        f"SELECT a.id, a.severity, a.summary, {key} AS score_key FROM scanner.advisories a "
        "WHERE a.withdrawn IS NULL AND a.id IN ("
        f"{m.candidates('SELECT id', 'scanner.advisories', ('id', 'summary'))} UNION "
        f"{m.candidates('SELECT advisory_id', 'scanner.advisory_aliases', ('alias',))})"
    )

    def hit(row: asyncpg.Record) -> SearchHit:
        summary = row["summary"] or "no summary"
        return st.hit(
            row,
            id=row["id"],
            title=row["id"],
            subtitle=_clip(f"{row['severity']}: {summary}"),
            url=f"/api/v1/vulndb/advisories/{row['id']}",
        )

    return st.query(inner, hit, after=after, limit=limit)
