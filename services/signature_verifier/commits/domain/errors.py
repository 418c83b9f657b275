"""The commits API's errors, each with its stable problem ``code``."""

from __future__ import annotations

from shared.errors import GatehouseError, NotFound, ValidationFailed


class MirrorNotFound(NotFound):
    """No mirror is configured for the repo. The gateway, which knows projects, answers a
    project's repo without a mirror as an empty listing and any other repo as 404."""

    code, title = "mirror_not_found", "No git mirror is configured for this repository"


class CommitNotFound(NotFound):
    code, title = "commit_not_found", "No commit found for SHA"


class AmbiguousSha(ValidationFailed):
    code, title = "ambiguous_sha", "The SHA prefix names more than one object"


class InvalidPath(ValidationFailed):
    code, title = "invalid_path", "The path is not a repository-relative path"


class MirrorUnreadable(GatehouseError):
    """libgit2 could not read the mirror (a corrupt object, a pack replaced mid-read): the
    fetcher may be rewriting it, so a retry may succeed."""

    code, status, title = "mirror_unreadable", 503, "The git mirror cannot be read"
    transient = True
    retry_after = 1


class ReadModelBehind(GatehouseError):
    """The caller saw an event change this repo's commits that the read models here have
    not applied yet (a cache asking with ``verifications_at``/``mirror_at``). Asking again
    without them answers from the read models as they are."""

    code, status, title = "read_model_behind", 503, "The read model has not caught up yet"
    transient = True
    retry_after = 1
