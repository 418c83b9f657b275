"""Projects by the id or slug a package URL names, kept in memory while the identity read
model stands still (as ``KeyCache`` keeps keys): ``pip install`` asks for dozens of files,
each naming its project, and a project changes rarely. Every identity event moves the
checkpoint, so a rename, an archival or a deletion is seen by the very next request."""

from __future__ import annotations

from prometheus_client import Counter

from services.gateway.adapters.read_model import find_project
from services.gateway.deps import GatewayDeps
from services.gateway.dto import ProjectView
from shared.projection import ProjectionRunner

MAX_ENTRIES = 10_000
_STATE_KEY = "gateway.package_projects"

PROJECT_LOOKUPS = Counter(
    "gatehouse_gateway_package_project_lookups_total",
    "Projects read from the database for a package route (project cache misses)",
)


class ProjectRefs:
    def __init__(self, runner: ProjectionRunner, *, max_entries: int = MAX_ENTRIES) -> None:
        self._runner = runner
        self._max_entries = max_entries
        self._entries: dict[str, tuple[int, ProjectView]] = {}

    async def find(self, deps: GatewayDeps, ref: str) -> ProjectView | None:
        # Read before loading: a change applied while loading leaves the entry already stale.
        checkpoint = self._runner.checkpoint
        hit = self._entries.get(ref)
        if hit is not None and hit[0] == checkpoint:
            return hit[1]
        PROJECT_LOOKUPS.inc()
        project = await find_project(deps.pool, ref)
        if project is None:  # unknown names are not remembered: nobody can fill the cache
            self._entries.pop(ref, None)
            return None
        if len(self._entries) >= self._max_entries:
            self._entries.clear()
        self._entries[ref] = (checkpoint, project)
        return project


def project_refs(deps: GatewayDeps) -> ProjectRefs:
    """The process's cache (made on first use)."""
    found = deps.runtime.state.get(_STATE_KEY)
    if not isinstance(found, ProjectRefs):
        found = deps.runtime.state[_STATE_KEY] = ProjectRefs(deps.runner)
    return found
