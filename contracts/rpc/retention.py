"""``svc.scanner.retention_*``: a registry repository's retention policies and their runs,
owned by the scanner (which owns the artifacts they delete).

A policy is a ``RetentionPolicy`` (``contracts.events.registry``) kept by events
(``retention.policy-set`` / ``retention.policy-deleted``); a *run* applies one: a dry run
answers at once with what would go and why, a real run is a job of the scanner (its state
is the scanner's own, not events) whose deletions publish ``retention.deleted`` then
``artifact.deleted`` (reason ``retention``) per artifact.

Errors (``shared.errors`` codes, mapped to HTTP by the gateway): ``repository_not_found``
404, ``retention_policy_not_found`` 404, ``retention_run_not_found`` 404,
``retention_policy_name_in_use`` 409 (``conflicting_policy_id`` names the other policy),
``retention_policy_disabled`` 409 (a real run of a disabled policy; a dry run is allowed),
``invalid_retention_policy`` 422 (naming the fields), ``precondition_failed`` 412.

Replies: ``retention_create`` / ``_get`` / ``_replace`` / ``_delete`` (as it was)
``RetentionPolicyView``; ``retention_list`` ``RetentionPolicyPage``; ``retention_run``,
``retention_run_get`` ``RetentionRun``; ``retention_run_list`` ``RetentionRunPage``.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from contracts.events.registry import RepositoryId, RetentionPolicy, RetentionPolicyId
from contracts.rpc.registry import LIMIT_DEFAULT, Cursor, Limit

SERVICE = "scanner"
RETENTION_CREATE = "retention_create"
RETENTION_LIST = "retention_list"
RETENTION_GET = "retention_get"
RETENTION_REPLACE = "retention_replace"
RETENTION_DELETE = "retention_delete"
RETENTION_RUN = "retention_run"
RETENTION_RUN_GET = "retention_run_get"
RETENTION_RUN_LIST = "retention_run_list"

RetentionRunId = Annotated[str, msgspec.Meta(pattern=r"^rrun_[0-9a-f]{32}$")]
# A run lists at most this many of its artifacts (the counts are always whole).
RUN_ITEMS_MAX = 1000


class RetentionPolicyView(msgspec.Struct, frozen=True, kw_only=True):
    """A policy as the API shows it: its definition (``RetentionPolicy``'s fields), where it
    belongs, and how many artifacts it deleted so far."""

    id: RetentionPolicyId
    repo_id: RepositoryId
    project_id: str | None
    name: str
    pattern: str | None
    keep_last: int | None
    max_age_days: int | None
    keep_pulled_days: int
    enabled: bool
    created_at: dt.datetime
    created_by: str
    updated_at: dt.datetime
    # The ETag (stream sequence of the policy's last retention.policy-set).
    revision: int
    deleted_count: int


class RetentionPolicyPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[RetentionPolicyView]
    next_cursor: str | None


class RetentionCreateRequest(msgspec.Struct, frozen=True, kw_only=True):
    repo_id: RepositoryId
    policy: RetentionPolicy


class RetentionListRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One repository's policies (``repo_id``), or every repository's (the admin mount),
    limited to ``project_ids`` when given."""

    repo_id: RepositoryId | None = None
    project_ids: list[str] | None = None
    cursor: Cursor | None = None
    limit: Limit = LIMIT_DEFAULT


class RetentionRef(msgspec.Struct, frozen=True, kw_only=True):
    repo_id: RepositoryId
    id: RetentionPolicyId


class RetentionReplaceRequest(msgspec.Struct, frozen=True, kw_only=True):
    """``PUT``: the whole policy again (its id stays)."""

    repo_id: RepositoryId
    id: RetentionPolicyId
    policy: RetentionPolicy
    # If-Match as the gateway reads the header (see ``RepositoryUpdateRequest``).
    if_match: list[int] | None = None


class RetentionDeleteRequest(msgspec.Struct, frozen=True, kw_only=True):
    repo_id: RepositoryId
    id: RetentionPolicyId
    if_match: list[int] | None = None


# ---- runs ------------------------------------------------------------------------------------
class RetentionRunRequest(msgspec.Struct, frozen=True, kw_only=True):
    repo_id: RepositoryId
    id: RetentionPolicyId
    dry_run: bool = True


RetentionGuard = Literal["promoted", "pulled_recently"]


class RetentionItem(msgspec.Struct, frozen=True, kw_only=True):
    """An artifact a run deletes (or would), and why."""

    artifact_id: str
    path: str
    name: str | None
    version: str | None
    digest: str
    size: int
    uploaded_at: dt.datetime
    why: str


class RetentionProtectedItem(msgspec.Struct, frozen=True, kw_only=True):
    """An artifact the policy's rules would delete but a guard keeps."""

    artifact_id: str
    path: str
    guard: RetentionGuard
    why: str


RunStatus = Literal["planned", "queued", "running", "done", "failed"]


class RetentionRun(msgspec.Struct, frozen=True, kw_only=True):
    """A run of a policy. A dry run (``dry_run``, ``status: planned``, no ``id``) is the
    plan itself; a real run is a job: ``queued``, then ``running`` with ``total`` (its
    plan's size) and ``deleted`` / ``skipped`` growing, then ``done`` (or ``failed``, with
    ``error``). ``skipped``: planned, but gone or guarded by the time its turn came."""

    id: RetentionRunId | None
    repo_id: RepositoryId
    policy_id: RetentionPolicyId
    dry_run: bool
    status: RunStatus
    trigger: Literal["manual", "interval"]
    total: int
    deleted: int
    skipped: int
    bytes_freed: int
    # What goes (a real run: its plan, made when it started), newest first per package,
    # and what the guards keep; at most RUN_ITEMS_MAX of each (``truncated``).
    items: list[RetentionItem]
    protected: list[RetentionProtectedItem]
    truncated: bool
    requested_by: str
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    error: str | None


class RetentionRunRef(msgspec.Struct, frozen=True, kw_only=True):
    repo_id: RepositoryId
    run_id: RetentionRunId


class RetentionRunListRequest(msgspec.Struct, frozen=True, kw_only=True):
    repo_id: RepositoryId
    cursor: Cursor | None = None
    limit: Limit = LIMIT_DEFAULT


class RetentionRunPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[RetentionRun]
    next_cursor: str | None
