"""Service-account rules: ids, names, the roles and expiry of a new token, last-use pacing.

Pure: ids, the clock and the previous last-use are passed in.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterable

from services.gateway.domain.errors import FieldInvalid

SERVICE_ACCOUNT_ID_PREFIX = "sa_"
TOKEN_ID_PREFIX = "sat_"
_SERVICE_ACCOUNT_ID = re.compile(r"^sa_[0-9a-f]{32}$")
_TOKEN_ID = re.compile(r"^sat_[0-9a-f]{32}$")
# How often a token's last use is written at most: an exact time per request would cost a
# database write per request; a minute is what "last used" is read at.
LAST_USED_EVERY = dt.timedelta(minutes=1)


def service_account_id(source: uuid.UUID) -> str:
    """``sa_<32 hex>`` from a (time-ordered) UUID: listings by id follow creation."""
    return SERVICE_ACCOUNT_ID_PREFIX + source.hex


def token_id(source: uuid.UUID) -> str:
    return TOKEN_ID_PREFIX + source.hex


def looks_like_service_account_id(ref: str) -> bool:
    return bool(_SERVICE_ACCOUNT_ID.match(ref))


def looks_like_token_id(ref: str) -> bool:
    return bool(_TOKEN_ID.match(ref))


def check_new_name(name: str) -> None:
    # /service_accounts/{id-or-name} must never be ambiguous.
    if looks_like_service_account_id(name):
        raise FieldInvalid("name", "a name must not look like a service-account id (sa_<hex>)")


def token_roles(account_roles: Iterable[str], requested: Iterable[str] | None) -> list[str]:
    """The roles of a new token: those requested, each one the account's (422
    ``role_not_allowed`` naming the others); all of the account's when none are asked for."""
    allowed = set(account_roles)
    if requested is None:
        return sorted(allowed)
    wanted = set(requested)
    beyond = sorted(wanted - allowed)
    if beyond:
        raise FieldInvalid(
            "roles",
            f"the service account does not have the role(s) {', '.join(beyond)}; "
            f"a token may have {', '.join(sorted(allowed))}",
            code="role_not_allowed",
        )
    return sorted(wanted)


def token_expiry(
    *, expires_at: dt.datetime | None, expires_in_days: int | None, now: dt.datetime
) -> dt.datetime | None:
    """When a new token expires: an absolute time or a number of days from ``now`` (not
    both); None: never."""
    if expires_at is not None and expires_in_days is not None:
        raise FieldInvalid("expires_in_days", "give expires_at or expires_in_days, not both")
    if expires_in_days is not None:
        return now + dt.timedelta(days=expires_in_days)
    if expires_at is not None and expires_at <= now:
        raise FieldInvalid("expires_at", "must be in the future")
    return expires_at


def last_use_due(previous: dt.datetime | None, now: dt.datetime) -> bool:
    """Whether a use at ``now`` is worth writing, given the last one written."""
    return previous is None or now - previous >= LAST_USED_EVERY
