"""``svc.scanner.search``: the scanner's part of ``GET /api/v1/search`` (registry
repositories, artifacts, components of every project's latest snapshot, advisories), and the
HTTP page the gateway answers with after merging it with its own (projects, git repos).

Ranking (``shared.search``): ``score_key`` desc, then ``kind``, then ``id`` (byte-wise).
The scanner answers its first ``limit + 1`` hits after ``after`` so the gateway can merge
and know whether a next page exists.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

SERVICE = "scanner"
SEARCH = "search"

SearchKind = Literal["project", "git_repo", "repository", "artifact", "component", "advisory"]
ScannerKind = Literal["repository", "artifact", "component", "advisory"]
SEARCH_KINDS: tuple[str, ...] = (
    "project",
    "git_repo",
    "repository",
    "artifact",
    "component",
    "advisory",
)
GATEWAY_KINDS: tuple[str, ...] = ("project", "git_repo")
SCANNER_KINDS: tuple[str, ...] = ("repository", "artifact", "component", "advisory")
SearchMode = Literal["trigram", "substring"]

SearchText = Annotated[str, msgspec.Meta(min_length=2, max_length=200)]
Limit = Annotated[int, msgspec.Meta(ge=1, le=500)]


class SearchAfter(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """The last hit of the previous page (the decoded cursor)."""

    score_key: int
    kind: str
    id: str


class SearchRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    q: SearchText
    kinds: list[ScannerKind]
    # A project-scoped caller: only these projects' repositories, artifacts and components
    # (advisories are global). None: every project.
    project_ids: list[str] | None = None
    after: SearchAfter | None = None
    limit: Limit = 50


class SearchHit(msgspec.Struct, frozen=True, kw_only=True):
    kind: SearchKind
    id: str
    title: str
    subtitle: str
    project_id: str | None = None
    url: Annotated[str, msgspec.Meta(description="The API path of the resource")]
    score: Annotated[
        float,
        msgspec.Meta(
            description="0..1: 1.0 an exact match, 0.5..0.75 a prefix, 0.25..0.5 a "
            "substring, below 0.25 a fuzzy match; within a tier, by similarity (pg_trgm's in "
            "trigram mode, the share of the field the query covers in substring mode)"
        ),
    ]
    score_key: Annotated[int, msgspec.Meta(description="score * 10,000: the rank's integer")]


class SearchReply(msgspec.Struct, frozen=True, kw_only=True):
    items: list[SearchHit]
    mode: SearchMode


class SearchPage(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /api/v1/search``: hits ranked best first."""

    items: list[SearchHit]
    next_cursor: str | None
    mode: Annotated[
        SearchMode,
        msgspec.Meta(
            description="trigram: pg_trgm serves the search (typos tolerated); substring: "
            "the database has no pg_trgm, fields match only when they contain q"
        ),
    ]
