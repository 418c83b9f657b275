"""The ``projects`` projection: ``project.created`` / ``project.updated`` → ``project_repos``
(repo → the projects listing it). A ``project.updated`` without ``repos`` leaves them as
they were; one with ``repos`` replaces the list. A replay gives identical rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg
import msgspec

from contracts.envelope import Event
from contracts.events.identity import ProjectCreated, ProjectUpdated
from services.webhook_fanout.projects import store

SUBJECTS = ("project.created", "project.updated")


@dataclass(eq=False)
class ProjectsProjection:
    name: str = "projects"
    schema: str = store.SCHEMA
    subjects: Sequence[str] | None = SUBJECTS
    tables: Sequence[str] = field(default=store.PROJECTION_TABLES)

    async def apply(self, conn: asyncpg.Connection, events: Sequence[Event]) -> None:
        # The last list of each project in the batch is the one that stands.
        lists: dict[str, Sequence[str]] = {}
        for event in events:
            payload = event.payload
            if isinstance(payload, ProjectCreated):
                lists[payload.project_id] = payload.repos
            elif isinstance(payload, ProjectUpdated) and payload.repos is not msgspec.UNSET:
                lists[payload.project_id] = payload.repos
        await store.set_repos_of(conn, lists)
