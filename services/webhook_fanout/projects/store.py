"""SQL of the projects part (migrations/0004_projects.sql): which projects list a repo."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Final

import asyncpg

from contracts.envelope import Event
from services.webhook_fanout.domain.matching import project_of

SCHEMA: Final = "webhook_fanout"
PROJECTION_TABLES: Final = ("project_repos",)


def repo_key(repo: str) -> str:
    """Repos compare case-insensitively (``Acme/Widget`` is ``acme/widget``)."""
    return repo.lower()


async def set_repos_of(conn: asyncpg.Connection, lists: Mapping[str, Iterable[str]]) -> None:
    """Each project of ``lists`` lists exactly its repos from now on, for a whole batch in
    two round trips (a busy stream of project events is applied in batches)."""
    if not lists:
        return
    pairs = sorted({(repo_key(repo), pid) for pid, repos in lists.items() for repo in repos})
    await conn.execute(
        f"DELETE FROM {SCHEMA}.project_repos WHERE project_id = ANY($1::text[])", list(lists)
    )
    if pairs:
        await conn.execute(
            f"INSERT INTO {SCHEMA}.project_repos (repo, project_id) "
            "SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING",
            [repo for repo, _ in pairs],
            [pid for _, pid in pairs],
        )


async def projects_of(
    db: asyncpg.Connection | asyncpg.Pool, repos: Iterable[str]
) -> dict[str, frozenset[str]]:
    """For each of ``repos`` (as given) that some project lists: those projects' ids."""
    given = {repo_key(repo): repo for repo in repos}
    if not given:
        return {}
    rows = await db.fetch(
        f"SELECT repo, array_agg(project_id) AS projects FROM {SCHEMA}.project_repos "
        "WHERE repo = ANY($1::text[]) GROUP BY repo",
        list(given),
    )
    found = {row["repo"]: frozenset(row["projects"]) for row in rows}
    return {repo: found[key] for key, repo in given.items() if key in found}


async def projects_of_events(
    db: asyncpg.Connection | asyncpg.Pool, events: Sequence[Event]
) -> dict[str, frozenset[str]]:
    """Event id → the projects listing its repo, for the events that name a repo and no
    project (``matching.matches``'s ``repo_project``)."""
    repos: dict[str, str] = {}
    for event in events:
        named = project_of(event)
        if named.project_id is None and named.repo is not None:
            repos[event.id] = named.repo
    listed = await projects_of(db, repos.values())
    return {event_id: listed[repo] for event_id, repo in repos.items() if repo in listed}
