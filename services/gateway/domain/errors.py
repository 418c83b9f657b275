"""The gateway's problem codes, each a :class:`shared.errors.GatehouseError` subclass."""

from __future__ import annotations

from typing import Any

from shared.errors import (
    Conflict,
    Forbidden,
    GatehouseError,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    RateLimited,
    Unauthorized,
    UpstreamTimeout,
    ValidationFailed,
)

# RFC 6750 §3: every 401 names the scheme; the error attribute says why a token failed.
_BEARER = 'Bearer realm="gatehouse"'


class MissingToken(Unauthorized):
    def __init__(self, detail: str = "send Authorization: Bearer <token>") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": _BEARER})


class InvalidToken(Unauthorized):
    """Malformed or unknown: deliberately the same answer, so tokens cannot be probed."""

    def __init__(self, detail: str = "the bearer token is not valid") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": f'{_BEARER}, error="invalid_token"'})


class TokenExpired(Unauthorized):
    code, title = "token_expired", "The token has expired"

    def __init__(self) -> None:
        super().__init__(
            "the bearer token has expired",
            headers={
                "WWW-Authenticate": f'{_BEARER}, error="invalid_token", '
                'error_description="token expired"'
            },
        )


class TokenRevoked(Unauthorized):
    code, title = "token_revoked", "The token was revoked"

    def __init__(self) -> None:
        super().__init__(
            "the bearer token was revoked",
            headers={
                "WWW-Authenticate": f'{_BEARER}, error="invalid_token", '
                'error_description="token revoked"'
            },
        )


class MissingRole(Forbidden):
    def __init__(self, needed: frozenset[str]) -> None:
        super().__init__(
            f"this operation needs one of the roles {', '.join(sorted(needed))}",
            extra={"required_roles": sorted(needed)},
        )


class ProjectScopeForbidden(Forbidden):
    def __init__(self) -> None:
        super().__init__("a project-scoped token cannot use this operation")


class TooManyRequests(RateLimited):
    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(
            f"rate limit exceeded; retry in {retry_after_seconds}s",
            headers={"Retry-After": str(retry_after_seconds)},
        )


class TooManyFailedAuthentications(RateLimited):
    """Too many failed authentications from one address: its unknown tokens are refused
    before they cost a database lookup."""

    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(
            f"too many failed authentications from this address; retry in {retry_after_seconds}s",
            code="too_many_failed_authentications",
            headers={"Retry-After": str(retry_after_seconds)},
        )


class FieldInvalid(ValidationFailed):
    """A well-formed body whose value breaks a rule the schema cannot express."""

    def __init__(self, field: str, message: str, *, code: str | None = None) -> None:
        super().__init__(
            f"{message} - at `$.{field}`",
            code=code,
            extra={"errors": [{"field": f"$.{field}", "message": message}]},
        )


class ProjectNotFound(NotFound):
    def __init__(self, ref: str) -> None:
        super().__init__(f"no project {ref!r}")


class ApiKeyNotFound(NotFound):
    def __init__(self, key_id: str) -> None:
        super().__init__(f"no API key {key_id!r}")


class ServiceAccountNotFound(NotFound):
    def __init__(self, ref: str) -> None:
        super().__init__(f"no service account {ref!r} in this project")


class ServiceAccountTokenNotFound(NotFound):
    def __init__(self, token_id: str) -> None:
        super().__init__(f"the service account has no token {token_id!r}")


class UserNotFound(NotFound):
    def __init__(self, login: str) -> None:
        super().__init__(f"no user {login!r}")


class EmailNotFound(NotFound):
    def __init__(self, login: str, email: str) -> None:
        super().__init__(f"user {login!r} has no e-mail address {email!r}")


class SlugTaken(Conflict):
    code, title = "slug_taken", "The slug is already in use"


class ProjectArchived(Conflict):
    code, title = "project_archived", "The project is archived"


class ServiceAccountNameTaken(Conflict):
    code, title = (
        "service_account_name_taken",
        "A service account of this project has the name already",
    )


class LoginTaken(Conflict):
    code, title = "login_taken", "The login is already in use"


class EmailTaken(Conflict):
    code, title = "email_taken", "The e-mail address belongs to a user already"


class EtagMismatch(PreconditionFailed):
    def __init__(self, current: str) -> None:
        super().__init__(
            "If-Match does not match the current ETag; read the resource again",
            extra={"current_etag": current},
        )


class IdempotencyKeyReused(ValidationFailed):
    code, title = "idempotency_key_reused", "The Idempotency-Key was used for another request"


class IdempotencyKeyInProgress(Conflict):
    code, title = (
        "idempotency_key_in_progress",
        "A request with this Idempotency-Key is still running",
    )


class WriteNotVisibleYet(UpstreamTimeout):
    """The event is on the stream (it will be applied), but not within the deadline."""

    code, title = "read_your_writes_timeout", "The write was accepted but is not visible yet"


def with_extra(exc: GatehouseError, **extra: Any) -> GatehouseError:
    exc.extra.update(extra)
    return exc


class NoUserForKey(Forbidden):
    """``/api/v1/user/...`` acts for the calling key's user, and this key has none."""

    code, title = "no_user_for_key", "The API key acts for no user"

    def __init__(self) -> None:
        super().__init__(
            "this API key acts for no user: create an API key with `user` (POST /api/v1/api-keys"
            ' {"user": "<login>", ...}) to manage that user\'s signing keys'
        )


class SigningKeyTooLarge(PayloadTooLarge):
    code, title = "key_too_large", "The signing key is too large"
