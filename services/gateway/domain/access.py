"""Who may call what: bearer parsing, key validity, roles and project scope."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from services.gateway.domain.errors import (
    InvalidToken,
    MissingRole,
    MissingToken,
    ProjectScopeForbidden,
    TokenExpired,
    TokenRevoked,
)
from services.gateway.domain.tokens import is_well_formed


@dataclass(frozen=True, kw_only=True)
class StoredKey:
    """What the read model knows about a key, enough to decide whether it may be used."""

    key_id: str
    name: str
    prefix: str
    roles: frozenset[str]
    project_id: str | None
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    bootstrap: bool
    # The user the key acts for (its `/api/v1/user/...` routes); None for most keys.
    user: str | None = None
    # Set for a service-account token (``key_id`` is then the token's id): the account it
    # acts as. Its ``project_id`` is the account's project, always.
    service_account_id: str | None = None


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header (401 otherwise)."""
    if not authorization:
        raise MissingToken()
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise MissingToken("the Authorization header must be 'Bearer <token>'")
    if not is_well_formed(token):
        raise InvalidToken()
    return token


def usable_key(key: StoredKey | None, *, now: dt.datetime) -> StoredKey:
    """The key itself when it may authenticate now; revocation wins over expiry."""
    if key is None:
        raise InvalidToken()
    if key.revoked_at is not None:
        raise TokenRevoked()
    if key.expires_at is not None and key.expires_at <= now:
        raise TokenExpired()
    return key


def require_roles(held: frozenset[str], needed: frozenset[str]) -> None:
    """At least one of ``needed`` (the route's roles) must be held."""
    if not held & needed:
        raise MissingRole(needed)


def require_scope_allows(
    *, key_project: str | None, route_has_project_param: bool, route_allows_scoped: bool
) -> None:
    """A project-scoped key may only call routes that name a project or filter by scope."""
    if key_project is not None and not (route_has_project_param or route_allows_scoped):
        raise ProjectScopeForbidden()


def may_see_project(*, key_project: str | None, project_id: str) -> bool:
    return key_project is None or key_project == project_id
