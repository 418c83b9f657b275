"""Small rules of the package routes' HTTP layer: which refusals take an upload's blobs
back, and the project cache bound to the identity checkpoint."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from services.gateway.dto import ProjectView
from services.gateway.packages.http import projects
from services.gateway.packages.http.storing import refused
from shared.errors import (
    BusUnavailable,
    Conflict,
    GatehouseError,
    UpstreamTimeout,
    UpstreamUnavailable,
)


@pytest.mark.parametrize(
    ("error", "certain"),
    [
        (Conflict("exists", code="artifact_exists"), True),
        (GatehouseError("quota", code="quota_exceeded", status=507), True),
        (GatehouseError("quota", code="quota_exceeded", status=413), True),
        (UpstreamUnavailable("no scanner"), True),  # no responders: never received
        (BusUnavailable("lost"), False),  # may have been received
        (UpstreamTimeout("slow"), False),
        (GatehouseError("bug"), False),
    ],
)
def test_only_a_certain_refusal_takes_the_blobs_back(error: GatehouseError, certain: bool) -> None:
    assert refused(error) is certain


class Runner:
    checkpoint = 1


class Deps:
    pool: Any = None


def project(slug: str) -> ProjectView:
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return ProjectView(
        id=f"id-{slug}",
        slug=slug,
        name=slug,
        description="",
        default_branch="main",
        repos=[],
        badge="private",  # type: ignore[arg-type]
        archived=False,
        archived_at=None,
        created_at=at,
        created_by="test",
        updated_at=at,
        version=1,
    )


async def test_projects_are_cached_until_the_identity_checkpoint_moves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loads: list[str] = []
    known = {"shop": project("shop")}

    async def find_project(_pool: Any, ref: str) -> ProjectView | None:
        loads.append(ref)
        return known.get(ref)

    monkeypatch.setattr(projects, "find_project", find_project)
    runner = Runner()
    cache = projects.ProjectRefs(runner)  # type: ignore[arg-type]
    deps: Any = Deps()
    assert (await cache.find(deps, "shop")) == known["shop"]
    assert (await cache.find(deps, "shop")) == known["shop"]
    assert loads == ["shop"]
    runner.checkpoint = 2  # any identity event: read again
    assert (await cache.find(deps, "shop")) == known["shop"]
    assert loads == ["shop", "shop"]
    # Unknown names are never remembered (nobody can fill the cache with them).
    assert await cache.find(deps, "nope") is None
    assert await cache.find(deps, "nope") is None
    assert loads[-2:] == ["nope", "nope"]
