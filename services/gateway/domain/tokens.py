"""API tokens: a prefix + 43 base62 characters (256 random bits), stored only as SHA-256.

Two kinds, told apart by their prefix so that secret scanners (and people) can: API keys
``gh_…`` and service-account tokens ``gsa_…``. Both authenticate the same way (Bearer, and
HTTP Basic as ``__token__:<token>`` for package clients).
"""

from __future__ import annotations

import hashlib
import re

TOKEN_PREFIX = "gh_"
SERVICE_ACCOUNT_TOKEN_PREFIX = "gsa_"
TOKEN_RANDOM_BYTES = 32
# 256 bits need 43 base62 digits.
TOKEN_DIGITS = 43
# Characters of the token kept in the read model to tell keys apart in listings.
DISPLAY_PREFIX_LENGTH = 10
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Operators may choose their own bootstrap token, so the accepted shape of an API key is
# wider than what new_token produces; service-account tokens are only ever made here.
_WELL_FORMED = re.compile(r"^(gh_[A-Za-z0-9_-]{16,200}|gsa_[A-Za-z0-9]{43})$")


def new_token(random_bytes: bytes, *, prefix: str = TOKEN_PREFIX) -> str:
    if len(random_bytes) != TOKEN_RANDOM_BYTES:
        raise ValueError(f"need {TOKEN_RANDOM_BYTES} random bytes, got {len(random_bytes)}")
    value = int.from_bytes(random_bytes, "big")
    digits = []
    for _ in range(TOKEN_DIGITS):
        value, digit = divmod(value, 62)
        digits.append(_BASE62[digit])
    return prefix + "".join(reversed(digits))


def new_service_account_token(random_bytes: bytes) -> str:
    """``gsa_`` + 43 base62 characters."""
    return new_token(random_bytes, prefix=SERVICE_ACCOUNT_TOKEN_PREFIX)


def is_well_formed(token: str) -> bool:
    return bool(_WELL_FORMED.match(token))


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def display_prefix(token: str) -> str:
    return token[:DISPLAY_PREFIX_LENGTH]
