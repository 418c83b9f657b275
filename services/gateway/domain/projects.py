"""Project rules: what a slug may be, and which fields a PATCH really changes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import msgspec

from contracts.events.identity import ProjectUpdated
from services.gateway.domain.errors import FieldInvalid

_PATCHABLE = ("name", "description", "default_branch", "repos", "badge")


@dataclass(frozen=True, kw_only=True)
class ProjectState:
    project_id: str
    name: str
    description: str
    default_branch: str
    repos: list[str]
    badge: str


def looks_like_id(ref: str) -> bool:
    """Project ids are UUIDs; a path segment that parses as one is looked up as an id."""
    try:
        uuid.UUID(ref)
    except ValueError:
        return False
    return True


def check_new_slug(slug: str) -> None:
    # /projects/{id-or-slug} must never be ambiguous.
    if looks_like_id(slug):
        raise FieldInvalid("slug", "a slug must not look like a project id (a UUID)")


def check_repos(repos: list[str]) -> None:
    if len(set(repos)) != len(repos):
        raise FieldInvalid("repos", "repositories must be listed once each")


def project_changes(current: ProjectState, patch: msgspec.Struct) -> ProjectUpdated | None:
    """A ``project.updated`` carrying only the fields whose value differs, or None."""
    changed: dict[str, object] = {}
    for field in _PATCHABLE:
        wanted = getattr(patch, field, msgspec.UNSET)
        if wanted is not msgspec.UNSET and wanted != getattr(current, field):
            changed[field] = wanted
    if not changed:
        return None
    return ProjectUpdated(project_id=current.project_id, **changed)  # type: ignore[arg-type]
