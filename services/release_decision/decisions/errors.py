"""Problems the decisions part answers with (stable codes)."""

from __future__ import annotations

from shared.errors import Conflict, Forbidden, NotFound


class RepoNotFound(NotFound):
    code, title = "repo_not_found", "No project lists this repository and nothing names it"


class HeadUnknown(NotFound):
    code, title = "head_unknown", "No commit has been seen on the default branch"


class ProjectNotFound(NotFound):
    code, title = "project_not_found", "No such project"


class SnapshotNotFound(NotFound):
    code, title = "snapshot_not_found", "No such snapshot (scan) of a commit"


class SnapshotNotPromotable(Conflict):
    code, title = "snapshot_not_promotable", "Only a succeeded scan can be promoted"


class ReleaseBlocked(Conflict):
    code, title = "release_blocked", "The snapshot's decision is NO_SHIP"


class AlreadyPromoted(Conflict):
    code, title = "already_promoted", "The snapshot was already promoted to this status"


class OverrideNotAllowed(Forbidden):
    code, title = "override_not_allowed", "Only an APPROVER may override a NO_SHIP decision"


class ArtifactNotFound(NotFound):
    code, title = "artifact_not_found", "No registry artifact of this digest"
