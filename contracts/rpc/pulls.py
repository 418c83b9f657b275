"""``svc.scanner.who_pulled``: who downloaded what and when, the reverse lookup an incident
needs. The scanner projects every ``download.recorded`` (published by the gateway for each
successful download) into its pull records; they are kept for good (no retention of their
own), also after the artifact or its repository was deleted.

Errors: ``invalid_who_pulled`` 422 (neither or both of purl and digest, a purl that is no
package URL, ``since`` after ``until``), ``invalid_cursor`` 422.
"""

from __future__ import annotations

import datetime as dt

import msgspec

from contracts.events.registry import Purl
from contracts.events.scans import Digest
from contracts.rpc.registry import LIMIT_DEFAULT, Cursor, Limit

SERVICE = "scanner"
WHO_PULLED = "who_pulled"


class WhoPulledRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Exactly one of ``purl`` (with a version: that version; without: every version) and
    ``digest``; ``since`` / ``until`` bound the download time (inclusive / exclusive).
    ``project_ids``: a project-scoped caller's project (the gateway fills it)."""

    purl: Purl | None = None
    digest: Digest | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    project_ids: list[str] | None = None
    cursor: Cursor | None = None
    limit: Limit = LIMIT_DEFAULT


class Pull(msgspec.Struct, frozen=True, kw_only=True):
    """One download: which artifact, by whom (``apikey:…``, ``serviceaccount:…`` or
    ``anonymous``), from which client address, when (the event's ``occurred_at``)."""

    artifact_id: str
    repo_id: str
    project_id: str
    digest: str
    purl: str | None
    principal: str
    address: str
    at: dt.datetime


class PullPage(msgspec.Struct, frozen=True, kw_only=True):
    """Newest first."""

    items: list[Pull]
    next_cursor: str | None
