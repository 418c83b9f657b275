"""Registers the projects part on the webhook-fanout's runtime: the ``projects`` projection
the intake reads to match repo-only events to project-filtered subscriptions."""

from __future__ import annotations

from services.webhook_fanout.projects.projection import ProjectsProjection
from shared.service import Runtime

PROJECTION = "projects"


async def setup(runtime: Runtime) -> None:
    runtime.add_projection(ProjectsProjection(name=PROJECTION))
