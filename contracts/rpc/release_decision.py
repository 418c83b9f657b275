"""``svc.release-decision.*``: decisions, the decision policy, promotions and health.

``DecisionView`` is also the body of ``GET /api/v1/releases/decision``.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from contracts.events.releases import Blocker, Decision, EvidenceRef
from contracts.events.scans import Repo

SERVICE = "release-decision"
DECISION_GET = "decision_get"

CommitRef = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^([0-9a-fA-F]{7,64}|HEAD)$",
        description="A commit id (7 to 64 hex digits), or HEAD: the newest commit seen on "
        "the default branch of the repo's project",
    ),
]


class DecisionRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Query of ``GET /api/v1/releases/decision``. ``as_of``: the decision as it was then."""

    repo: Repo
    commit: CommitRef
    as_of: dt.datetime | None = None


class Baseline(msgspec.Struct, frozen=True, kw_only=True):
    """The repo's latest promoted snapshot."""

    snapshot_id: str | None = None
    commit_sha: str | None = None
    promotion_id: str | None = None
    target_status: str | None = None
    promoted_at: dt.datetime | None = None


class DecisionView(msgspec.Struct, frozen=True, kw_only=True):
    repo: str
    commit: Annotated[str, msgspec.Meta(description="Resolved (HEAD → the commit id)")]
    project_id: str | None = None
    decision: Decision
    blockers: list[Blocker]
    blocker_total: int = 0
    baseline: Baseline = Baseline()
    evaluated_at: dt.datetime
    policy_version: int
    revision: Annotated[int, msgspec.Meta(ge=0, description="0: never decided (no evidence)")]
    evidence: EvidenceRef = EvidenceRef()
