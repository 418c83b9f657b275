"""The request and response bodies of the gateway's own API (they make its OpenAPI schemas)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec

from contracts.events.identity import (
    Email,
    Login,
    Role,
    ServiceAccountName,
    Slug,
    UserEmail,
    Visibility,
)
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
    service_account_id: (
        Annotated[
            str,
            msgspec.Meta(description="The service account whose token this is (null: an API key)"),
        ]
        | None
    ) = None


# ---- service accounts ----------------------------------------------------------------------
Roles = Annotated[list[Role], msgspec.Meta(min_length=1, max_length=6)]


class ServiceAccountCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[
        ServiceAccountName,
        msgspec.Meta(description="Unique in the project; lower case, digits, . _ -"),
    ]
    description: Annotated[str, msgspec.Meta(max_length=1000)] = ""
    roles: Annotated[Roles, msgspec.Meta(description="The most its tokens may do")]


class ServiceAccountView(msgspec.Struct, kw_only=True):
    id: Annotated[str, msgspec.Meta(description="sa_<32 hex>")]
    project_id: str
    name: str
    description: str
    roles: list[Role]
    created_at: dt.datetime
    created_by: str


class ServiceAccountList(msgspec.Struct, kw_only=True):
    items: list[ServiceAccountView]
    next_cursor: str | None


class ServiceAccountListQuery(PageQuery, frozen=True, kw_only=True):
    name: (
        Annotated[str, msgspec.Meta(min_length=1, max_length=63, description="Exact name")] | None
    ) = None


class ServiceAccountTokenCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(max_length=200)] = ""
    roles: (
        Annotated[
            Roles, msgspec.Meta(description="A subset of the account's roles; default all of them")
        ]
        | None
    ) = None
    expires_at: (
        Annotated[AwareDatetime, msgspec.Meta(description="RFC 3339 with offset; future")] | None
    ) = None
    expires_in_days: (
        Annotated[
            int, msgspec.Meta(ge=1, le=3650, description="Instead of expires_at: days from now")
        ]
        | None
    ) = None


class ServiceAccountTokenView(msgspec.Struct, kw_only=True):
    id: str
    service_account_id: str
    project_id: str
    name: str
    prefix: Annotated[str, msgspec.Meta(description="First characters of the token")]
    roles: list[Role]
    expires_at: dt.datetime | None
    created_at: dt.datetime
    created_by: str
    last_used_at: Annotated[
        dt.datetime | None,
        msgspec.Meta(description="Last authenticated use, to the minute"),
    ]
    revoked: bool
    revoked_at: dt.datetime | None


class ServiceAccountTokenIssued(msgspec.Struct, kw_only=True):
    """A new token: the only time its plaintext is ever shown."""

    id: str
    service_account_id: str
    project_id: str
    name: str
    prefix: str
    roles: list[Role]
    expires_at: dt.datetime | None
    created_at: dt.datetime
    token: (
        Annotated[
            str,
            msgspec.Meta(description="The token (gsa_…); null in an Idempotency-Key replay"),
        ]
        | None
    )


class ServiceAccountTokenList(msgspec.Struct, kw_only=True):
    items: list[ServiceAccountTokenView]
    next_cursor: str | None


class ServiceAccountTokenListQuery(PageQuery, frozen=True, kw_only=True):
    pass


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
    help_url: Annotated[
        str | None, msgspec.Meta(description="The operator's help page (GATEHOUSE_HELP_URL)")
    ] = None
    banner: Annotated[
        str | None,
        msgspec.Meta(description="The operator's notice, plain text (GATEHOUSE_BANNER)"),
    ] = None


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
