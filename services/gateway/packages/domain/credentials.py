"""Credentials as package clients send them: HTTP Basic with the username ``__token__``
and a Gatehouse token as the password (pip, twine, uv, poetry), or ``Bearer <token>``.

The token's shape and validity are the gateway's ordinary token lookup's to judge."""

from __future__ import annotations

import base64
import binascii

from shared.errors import Unauthorized

TOKEN_USERNAME = "__token__"
BASIC_CHALLENGE = 'Basic realm="gatehouse"'
_MAX_HEADER = 4096


class BadCredentials(Unauthorized):
    """A 401 that package clients answer with their stored credentials (Basic challenge)."""

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail, code=code, headers={"WWW-Authenticate": BASIC_CHALLENGE})


def token_of(authorization: str | None) -> str | None:
    """The token an ``Authorization`` header carries; None without the header."""
    if authorization is None:
        return None
    if len(authorization) > _MAX_HEADER:
        raise BadCredentials("the Authorization header is too long")
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return value
    if scheme.lower() != "basic" or not value:
        raise BadCredentials(
            f"send HTTP Basic credentials: username {TOKEN_USERNAME}, password a Gatehouse token"
        )
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise BadCredentials("the Basic credentials are not base64 of UTF-8 text") from None
    username, sep, password = decoded.partition(":")
    if not sep or username != TOKEN_USERNAME or not password:
        raise BadCredentials(
            f"use the username {TOKEN_USERNAME} and a Gatehouse token (gh_… or gsa_…) "
            "as the password"
        )
    return password
