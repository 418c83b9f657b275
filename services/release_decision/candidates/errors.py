"""Problem codes of release candidates and deployments.

Every one also carries ``error``: the message the Aviator releases API answers with
(``{"error": "Invalid commit hash"}``), so clients written for that API keep working, while
``code`` stays our stable, machine-readable name.
"""

from __future__ import annotations

from typing import Any

import msgspec

from contracts.events.releases import Blocker
from shared.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    ValidationFailed,
)


def _aviator(message: str, **extra: Any) -> dict[str, Any]:
    return {"error": message, **extra}


class InvalidReleaseCandidateVersion(BadRequest):
    code, title = "invalid_release_candidate_version", "Invalid release candidate version"

    def __init__(self, version: str) -> None:
        super().__init__(
            f"{version!r} is not a release candidate version: the release version followed "
            "by -rcN is required, e.g. v1.4.0-rc2",
            extra=_aviator(self.title),
        )


class InvalidCommitHash(BadRequest):
    code, title = "invalid_commit_hash", "Invalid commit hash"

    def __init__(self, commit: str) -> None:
        super().__init__(
            f"{commit[:80]!r} is not a full commit SHA (40 or 64 hex digits)",
            extra=_aviator(self.title),
        )


class RepositoryNotFound(NotFound):
    code, title = "repository_not_found", "GitHub repository not found"

    def __init__(self, repo: str, project: str) -> None:
        super().__init__(
            f"the project {project!r} lists no repository {repo[:256]!r}",
            extra=_aviator(self.title),
        )


class EnvironmentNotFound(NotFound):
    code, title = "environment_not_found", "Release environment not found"

    def __init__(self, name: str) -> None:
        super().__init__(
            f"the project has no environment {name[:128]!r}; create it with PUT "
            "/api/releases/{project}/environments/{env}",
            extra=_aviator(self.title),
        )


class ReleaseNotFound(NotFound):
    code, title = "release_not_found", "Release not found"

    def __init__(self, version: str) -> None:
        super().__init__(
            f"the project has no release or release candidate {version[:128]!r}",
            extra=_aviator(self.title),
        )


class CandidateExists(Conflict):
    code, title = "release_candidate_exists", "Release candidate already exists"

    def __init__(self, version: str, *, repo: str, commit: str) -> None:
        super().__init__(
            f"release candidate {version!r} exists already, at {repo} {commit}; cut the "
            "next candidate (-rcN+1) for another commit",
            extra=_aviator(self.title, repo=repo, commit=commit),
        )


class InvalidEnvironmentName(ValidationFailed):
    code, title = "invalid_environment_name", "Invalid environment name"

    def __init__(self, name: str) -> None:
        message = "letters, digits, - and _ only, 1 to 63 characters"
        super().__init__(
            f"{name[:128]!r}: {message}",
            extra=_aviator(self.title, errors=[{"field": "env", "message": message, "in": "path"}]),
        )


class DeploymentBlocked(Conflict):
    """NO_SHIP into a protected environment (same code as a refused promotion)."""

    code, title = "release_blocked", "The release candidate may not ship"

    def __init__(self, *, environment: str, commit: str, blockers: list[Blocker]) -> None:
        super().__init__(
            f"{environment!r} is protected and commit {commit} is NO_SHIP "
            f"({len(blockers)} blocker(s)); an APPROVER may deploy it with "
            'override: {"reason": "..."}',
            extra=_aviator(
                "Release candidate is blocked",
                decision="NO_SHIP",
                blockers=msgspec.to_builtins(blockers),
            ),
        )


class OverrideNotAllowed(Forbidden):
    code, title = "override_not_allowed", "Only an APPROVER may override the release gate"

    def __init__(self) -> None:
        super().__init__(
            "override needs the APPROVER role; deploy without override, or ask an approver",
            extra=_aviator(self.title),
        )


class ProjectArchived(Conflict):
    code, title = "project_archived", "The project is archived"

    def __init__(self, slug: str) -> None:
        super().__init__(
            f"project {slug!r} is archived and takes no new releases, environments or deployments",
            extra=_aviator(self.title),
        )
