"""The registry's problem codes (``contracts/rpc/registry.py`` lists them for the gateway)."""

from __future__ import annotations

from typing import Protocol

from services.scanner.registry.domain import FieldProblem, QuotaRefusal
from shared.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    GatehouseError,
    NotFound,
    PreconditionFailed,
    ValidationFailed,
)


class RepositoryNotFound(NotFound):
    code, title = "repository_not_found", "No such repository"


class RepositorySlugTaken(Conflict):
    code, title = "repository_slug_taken", "The project already has a repository of this slug"


class RepositoryFormatMismatch(BadRequest):
    code, title = "repository_format_mismatch", "The repository does not hold this kind"


class ArtifactNotFound(NotFound):
    code, title = "artifact_not_found", "No such artifact"


class ArtifactExists(Conflict):
    code, title = "artifact_exists", "The repository already has a file of this name"


class BlockNotFound(NotFound):
    code, title = "block_not_found", "No such block"


class NotQuarantined(Conflict):
    code, title = "not_quarantined", "The artifact is not in quarantine"


class PromotionBlocked(Conflict):
    code, title = "promotion_blocked", "The artifact may not be promoted"


class OverrideNotAllowed(Forbidden):
    code, title = "override_not_allowed", "Only an APPROVER may override a NO_SHIP decision"


class OverQuota(GatehouseError):
    code, title = "quota_exceeded", "The repository's quota would be exceeded"

    def __init__(self, refusal: QuotaRefusal, *, repo_id: str) -> None:
        super().__init__(
            refusal.message(),
            status=refusal.status,
            extra={
                "repo_id": repo_id,
                "quota": refusal.kind,
                "limit": refusal.limit,
                "used": refusal.used,
                "attempted": refusal.attempted,
            },
        )


class RevisionMismatch(PreconditionFailed):
    def __init__(self, current: int, what: str) -> None:
        super().__init__(
            f"If-Match does not match the current ETag; read the {what} again",
            extra={"current_etag": f'"v{current}"'},
        )


def invalid(problems: list[FieldProblem], *, code: str = "validation_failed") -> ValidationFailed:
    """A 422 naming every field at fault."""
    return ValidationFailed(
        "; ".join(f"{p.field}: {p.message}" for p in problems),
        code=code,
        extra={
            "errors": [{"field": p.field, "message": p.message, "in": "body"} for p in problems]
        },
    )


def check_revision(
    current: int, *, if_revision: int | None, if_match: list[int] | None, what: str
) -> None:
    """412 unless the caller's If-Match (a revision, or the revisions of its tags) names the
    current revision; no condition passes."""
    if if_revision is not None and if_revision != current:
        raise RevisionMismatch(current, what)
    if if_match is not None and current not in if_match:
        raise RevisionMismatch(current, what)


class Conditional(Protocol):
    """A write's preconditions: the revision it expects, or the If-Match header's."""

    @property
    def if_revision(self) -> int | None: ...
    @property
    def if_match(self) -> list[int] | None: ...


def check_conditions(current: int, request: Conditional, *, what: str) -> None:
    """:func:`check_revision` with the conditions ``request`` carries."""
    check_revision(current, if_revision=request.if_revision, if_match=request.if_match, what=what)
