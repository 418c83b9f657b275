"""Events owned by the gateway: projects, API keys and users."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from contracts.envelope import EventPayload, register

Role = Literal["ADMIN", "AUDITOR", "VIEWER", "OPERATOR", "APPROVER", "POLICY_AUTHOR"]
ROLES: tuple[Role, ...] = ("ADMIN", "AUDITOR", "VIEWER", "OPERATOR", "APPROVER", "POLICY_AUTHOR")

Slug = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
Login = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}$")]
Email = Annotated[str, msgspec.Meta(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)]
Visibility = Literal["public", "private"]


@register
class ProjectCreated(EventPayload, frozen=True, kw_only=True):
    """A project was created."""

    event_type = "project.created"
    project_id: str
    slug: Slug
    name: str
    description: str = ""
    default_branch: str = "main"
    repos: list[str] = []
    badge: Visibility = "private"


@register
class ProjectUpdated(EventPayload, frozen=True, kw_only=True):
    """Fields of a project changed; only the changed fields are present."""

    event_type = "project.updated"
    project_id: str
    name: str | msgspec.UnsetType = msgspec.UNSET
    description: str | msgspec.UnsetType = msgspec.UNSET
    default_branch: str | msgspec.UnsetType = msgspec.UNSET
    repos: list[str] | msgspec.UnsetType = msgspec.UNSET
    badge: Visibility | msgspec.UnsetType = msgspec.UNSET


@register
class ProjectArchived(EventPayload, frozen=True, kw_only=True):
    """A project was archived (DELETE on the API); it keeps its history."""

    event_type = "project.archived"
    project_id: str


@register
class ApiKeyCreated(EventPayload, frozen=True, kw_only=True):
    """An API key was issued. Only the SHA-256 of the token is carried."""

    event_type = "apikey.created"
    key_id: str
    name: str
    prefix: str
    token_sha256: str
    roles: list[Role]
    project_id: str | None = None
    expires_at: dt.datetime | None = None
    bootstrap: bool = False
    # The user the key acts for (`/api/v1/user/...` routes: its GPG and SSH keys).
    user: Login | None = None


@register
class ApiKeyRevoked(EventPayload, frozen=True, kw_only=True):
    """An API key was revoked; it stops working on the next request."""

    event_type = "apikey.revoked"
    key_id: str


class UserEmail(msgspec.Struct, frozen=True, kw_only=True):
    email: Email
    verified: bool = False


@register
class UserCreated(EventPayload, frozen=True, kw_only=True):
    """A user (a person whose commits may be verified) was created."""

    event_type = "user.created"
    login: Login
    name: str
    emails: list[UserEmail] = []


@register
class UserEmailAdded(EventPayload, frozen=True, kw_only=True):
    """An e-mail address was added to a user."""

    event_type = "user.email-added"
    login: Login
    email: Email
    verified: bool = False


@register
class UserEmailVerified(EventPayload, frozen=True, kw_only=True):
    """An e-mail address of a user was marked verified."""

    event_type = "user.email-verified"
    login: Login
    email: Email


# Service accounts: machine principals of one project (OrbitalReg's `orbsa_` tokens).
ServiceAccountId = Annotated[str, msgspec.Meta(pattern=r"^sa_[0-9a-f]{32}$")]
ServiceAccountName = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")]


@register
class ServiceAccountCreated(EventPayload, frozen=True, kw_only=True):
    """A service account was created in a project; its tokens act with at most ``roles``,
    within that project only."""

    event_type = "serviceaccount.created"
    id: ServiceAccountId
    project_id: str
    name: ServiceAccountName
    description: Annotated[str, msgspec.Meta(max_length=1000)] = ""
    roles: list[Role]


@register
class ServiceAccountDeleted(EventPayload, frozen=True, kw_only=True):
    """A service account was deleted; every token of it stops working."""

    event_type = "serviceaccount.deleted"
    id: ServiceAccountId


@register
class ServiceAccountTokenCreated(EventPayload, frozen=True, kw_only=True):
    """A token was minted for a service account. Only the SHA-256 of the token is carried."""

    event_type = "serviceaccount.token-created"
    id: str
    service_account_id: ServiceAccountId
    project_id: str
    name: Annotated[str, msgspec.Meta(max_length=200)] = ""
    prefix: str
    token_sha256: str
    # A subset of the account's roles.
    roles: list[Role]
    expires_at: dt.datetime | None = None


@register
class ServiceAccountTokenRevoked(EventPayload, frozen=True, kw_only=True):
    """A service-account token was revoked; it stops working on the next request."""

    event_type = "serviceaccount.token-revoked"
    id: str
    service_account_id: ServiceAccountId
