"""``svc.audit.*``: query, export and verify the hash-chained audit log.

The gateway's ``/api/v1/audit*`` routes call these; ``AuditPage`` is also the body of
``GET /api/v1/audit`` as it is.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

SERVICE = "audit"
QUERY = "query"
EXPORT_PAGE = "export_page"
VERIFY = "verify"

PAGE_SIZE_DEFAULT = 50
PAGE_SIZE_MAX = 200
# Rows per export_page reply: a few hundred kilobytes, well inside the NATS payload limit.
EXPORT_PAGE_MAX = 500
# Entries one verify call checks before it hands back a cursor (well inside the RPC timeout).
VERIFY_ROWS_MAX = 20_000

Sequence = Annotated[int, msgspec.Meta(ge=0, description="A stream sequence")]
PageNumber = Annotated[int, msgspec.Meta(ge=1, le=10_000_000, description="1-based page number")]
PageSize = Annotated[
    int,
    msgspec.Meta(ge=1, le=PAGE_SIZE_MAX, description=f"Entries per page, 1..{PAGE_SIZE_MAX}"),
]
FilterText = Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
SearchText = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
AwareDatetime = Annotated[dt.datetime, msgspec.Meta(tz=True)]
Sha256Hex = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
MinSequence = Annotated[
    int,
    msgspec.Meta(
        ge=0,
        description="Wait (a few seconds at most) until the audit log has applied this stream "
        "sequence, e.g. the version of a resource you just changed (read-your-writes)",
    ),
]


class AuditFilters(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Entries matching all of the given filters (none: every entry)."""

    actor: FilterText | None = None
    type: FilterText | None = None
    aggregate: FilterText | None = None
    occurred_from: AwareDatetime | None = None  # inclusive
    occurred_to: AwareDatetime | None = None  # exclusive
    q: SearchText | None = None  # full text over the event's string and number values


def window_problem(occurred_from: dt.datetime | None, occurred_to: dt.datetime | None) -> str:
    """Why a time window is empty by construction, or "" when it is a real window."""
    if occurred_from is not None and occurred_to is not None and occurred_to <= occurred_from:
        return "`to` must be later than `from`"
    return ""


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One event of the stream as the audit log holds it, with its link in the hash chain."""

    sequence: Annotated[int, msgspec.Meta(description="Stream sequence of the event")]
    event_id: str
    type: str
    aggregate: str
    actor: str
    source: str
    occurred_at: dt.datetime
    correlation_id: str | None
    causation_id: str | None
    prev_hash: Annotated[
        str, msgspec.Meta(description="Hex SHA-256 of the entry before (64 zeros for the first)")
    ]
    hash: Annotated[str, msgspec.Meta(description="Hex SHA-256(prev_hash bytes ‖ event bytes)")]
    event: Annotated[
        msgspec.Raw,
        msgspec.Meta(
            description="The whole event envelope, canonical JSON (sorted keys)",
            extra_json_schema={"type": "object"},
        ),
    ]


class AuditQueryRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    filters: AuditFilters = AuditFilters()
    page: PageNumber = 1
    page_size: PageSize = PAGE_SIZE_DEFAULT
    min_sequence: MinSequence = 0


class AuditPage(msgspec.Struct, frozen=True, kw_only=True):
    """A page of matching entries, newest first."""

    items: list[AuditEntry]
    page: int
    page_size: int
    total: Annotated[int, msgspec.Meta(description="Entries matching the filters")]
    has_more: bool


class AuditExportRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One page of an export: matching entries oldest first, strictly after ``after_sequence``
    and at most ``up_to_sequence`` (the log's head when the export began: a stable snapshot)."""

    filters: AuditFilters = AuditFilters()
    after_sequence: Sequence = 0
    up_to_sequence: Sequence | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=EXPORT_PAGE_MAX)] = EXPORT_PAGE_MAX
    count_total: bool = False
    min_sequence: MinSequence = 0


class AuditExportPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[AuditEntry]
    up_to_sequence: int
    # Pass as after_sequence for the next page; None when this was the last one.
    next_after: int | None
    # Entries of the whole export (only when count_total was asked for).
    total: int | None = None


class AuditVerifyRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Check the chain from the entry after ``after_sequence`` (0: from the first entry)."""

    after_sequence: Sequence = 0
    up_to_sequence: Sequence | None = None
    max_rows: Annotated[int, msgspec.Meta(ge=1, le=VERIFY_ROWS_MAX)] = VERIFY_ROWS_MAX


class AuditVerifyProgress(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    checked: int
    first_bad_sequence: int | None
    problem: str | None
    # The last entry that verified (after_sequence and its hash when none did).
    last_sequence: int
    last_hash: str
    up_to_sequence: int
    # Nothing left to check up to up_to_sequence (or a bad entry was found).
    done: bool


class AuditVerification(msgspec.Struct, frozen=True, kw_only=True):
    """The verdict over the whole chain, as ``GET /api/v1/audit/verify`` answers it."""

    ok: bool
    checked: Annotated[
        int, msgspec.Meta(description="Entries examined (up to and including a bad one)")
    ]
    first_bad_sequence: Annotated[
        int | None, msgspec.Meta(description="Stream sequence of the first entry that fails")
    ]
    problem: Annotated[str | None, msgspec.Meta(description="What is wrong with that entry")]
    head_sequence: Annotated[
        int, msgspec.Meta(description="The last entry covered by this verification")
    ]
    head_hash: Annotated[
        str,
        msgspec.Meta(
            description="Hash of the last verified entry: keep it elsewhere to detect a "
            "rewritten or cut tail later"
        ),
    ]
