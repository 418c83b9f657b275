"""The request and response bodies of the gateway's own API (they make its OpenAPI schemas)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec

from contracts.events.identity import Email, Login, Role, Slug, UserEmail, Visibility
from contracts.rpc.audit import PAGE_SIZE_DEFAULT, PageNumber, PageSize
from shared.pagination import PageQuery

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Description = Annotated[str, msgspec.Meta(max_length=2000)]
Branch = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
RepoList = Annotated[
    list[Annotated[str, msgspec.Meta(min_length=1, max_length=255)]],
    msgspec.Meta(max_length=100),
]
AwareDatetime = Annotated[dt.datetime, msgspec.Meta(tz=True)]


class Problem(msgspec.Struct, kw_only=True):
    """RFC 9457 problem details, as every error of the API is answered."""

    type: str
    title: str
    status: int
    detail: str
    code: Annotated[str, msgspec.Meta(description="Stable, machine-readable error code")]
    request_id: str
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None


# ---- API keys ------------------------------------------------------------------------------
class ApiKeyCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Name
    roles: Annotated[list[Role], msgspec.Meta(min_length=1, max_length=6)]
    project: (
        Annotated[str, msgspec.Meta(description="Id or slug of the only project the key may use")]
        | None
    ) = None
    expires_at: (
        Annotated[AwareDatetime, msgspec.Meta(description="RFC 3339 with offset; future")] | None
    ) = None
    user: (
        Annotated[
            Login,
            msgspec.Meta(
                description="Login of an existing user the key acts for on /api/v1/user/... "
                "(its GPG and SSH signing keys)"
            ),
        ]
        | None
    ) = None


class ApiKeyView(msgspec.Struct, kw_only=True):
    id: str
    name: str
    prefix: Annotated[str, msgspec.Meta(description="First characters of the token")]
    roles: list[Role]
    project_id: str | None
    expires_at: dt.datetime | None
    created_at: dt.datetime
    created_by: str
    revoked_at: dt.datetime | None
    bootstrap: bool
    user: Annotated[str | None, msgspec.Meta(description="The user the key acts for")] = None


class ApiKeyIssued(msgspec.Struct, kw_only=True):
    """A new key with its token: the only time the token is ever shown."""

    id: str
    name: str
    prefix: str
    roles: list[Role]
    project_id: str | None
    expires_at: dt.datetime | None
    created_at: dt.datetime
    token: (
        Annotated[
            str,
            msgspec.Meta(description="The bearer token; null in an Idempotency-Key replay"),
        ]
        | None
    )
    user: str | None = None


class ApiKeyList(msgspec.Struct, kw_only=True):
    items: list[ApiKeyView]
    next_cursor: str | None


class ApiKeyListQuery(PageQuery, frozen=True, kw_only=True):
    include_revoked: bool = False


class Me(msgspec.Struct, kw_only=True):
    key_id: str
    name: str
    prefix: str
    actor: str
    roles: list[Role]
    project_id: str | None
    expires_at: dt.datetime | None
    bootstrap: bool
    user: str | None = None


# ---- projects ------------------------------------------------------------------------------
class ProjectCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    slug: Slug
    name: Name
    description: Description = ""
    default_branch: Branch = "main"
    repos: RepoList = []
    badge: Visibility = "private"


class ProjectPatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Only the fields present change; the slug is permanent."""

    name: Name | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType = msgspec.UNSET
    default_branch: Branch | msgspec.UnsetType = msgspec.UNSET
    repos: RepoList | msgspec.UnsetType = msgspec.UNSET
    badge: Visibility | msgspec.UnsetType = msgspec.UNSET


class ProjectView(msgspec.Struct, kw_only=True):
    id: str
    slug: str
    name: str
    description: str
    default_branch: str
    repos: list[str]
    badge: Visibility
    archived: bool
    archived_at: dt.datetime | None
    created_at: dt.datetime
    created_by: str
    updated_at: dt.datetime
    version: Annotated[int, msgspec.Meta(description="Stream sequence of the last change")]


class ProjectList(msgspec.Struct, kw_only=True):
    items: list[ProjectView]
    next_cursor: str | None


class ProjectListQuery(PageQuery, frozen=True, kw_only=True):
    include_archived: bool = False


# ---- users ---------------------------------------------------------------------------------
class UserCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    login: Login
    name: Name
    emails: Annotated[list[UserEmail], msgspec.Meta(max_length=50)] = []


class EmailAdd(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    email: Email
    verified: bool = False


class EmailView(msgspec.Struct, kw_only=True):
    email: str
    verified: bool
    added_at: dt.datetime
    verified_at: dt.datetime | None


class UserView(msgspec.Struct, kw_only=True):
    login: str
    name: str
    emails: list[EmailView]
    created_at: dt.datetime
    updated_at: dt.datetime


# ---- public --------------------------------------------------------------------------------
class PublicConfig(msgspec.Struct, kw_only=True):
    version: str
    features: list[str]


# ---- audit ---------------------------------------------------------------------------------
class AuditFilterQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Filters of the audit log; all given ones must match."""

    actor: (
        Annotated[
            str,
            msgspec.Meta(
                min_length=1, max_length=512, description="Who caused the event (apikey:<id>)"
            ),
        ]
        | None
    ) = None
    type: (
        Annotated[
            str,
            msgspec.Meta(min_length=1, max_length=512, description="Event type (project.created)"),
        ]
        | None
    ) = None
    aggregate: (
        Annotated[
            str,
            msgspec.Meta(min_length=1, max_length=512, description="Aggregate (project:<id>)"),
        ]
        | None
    ) = None
    from_: (
        Annotated[
            AwareDatetime,
            msgspec.Meta(description="Occurred at or after (RFC 3339 with offset, e.g. …Z)"),
        ]
        | None
    ) = msgspec.field(default=None, name="from")
    to: (
        Annotated[
            AwareDatetime,
            msgspec.Meta(description="Occurred before (RFC 3339 with offset); after `from`"),
        ]
        | None
    ) = None
    q: (
        Annotated[
            str,
            msgspec.Meta(
                min_length=1,
                max_length=200,
                description='Full text over the event\'s values (web search syntax: "a b", -x, or)',
            ),
        ]
        | None
    ) = None
    min_sequence: Annotated[
        int,
        msgspec.Meta(
            ge=0,
            description="Wait until the log has applied this stream sequence (e.g. the "
            "version of a resource you just changed)",
        ),
    ] = 0


class AuditListQuery(AuditFilterQuery, frozen=True, kw_only=True):
    page: PageNumber = 1
    page_size: PageSize = PAGE_SIZE_DEFAULT
