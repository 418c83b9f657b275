"""API tokens: ``gh_`` + 43 base62 characters (256 random bits), stored only as SHA-256."""

from __future__ import annotations

import hashlib
import re

TOKEN_PREFIX = "gh_"
TOKEN_RANDOM_BYTES = 32
# Characters of the token kept in the read model to tell keys apart in listings.
DISPLAY_PREFIX_LENGTH = 10
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# 256 bits need 43 base62 digits; operators may choose their own bootstrap token, so the
# accepted shape is wider than what new_token produces.
_WELL_FORMED = re.compile(r"^gh_[A-Za-z0-9_-]{16,200}$")


def new_token(random_bytes: bytes) -> str:
    if len(random_bytes) != TOKEN_RANDOM_BYTES:
        raise ValueError(f"need {TOKEN_RANDOM_BYTES} random bytes, got {len(random_bytes)}")
    value = int.from_bytes(random_bytes, "big")
    digits = []
    for _ in range(43):
        value, digit = divmod(value, 62)
        digits.append(_BASE62[digit])
    return TOKEN_PREFIX + "".join(reversed(digits))


def is_well_formed(token: str) -> bool:
    return bool(_WELL_FORMED.match(token))


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def display_prefix(token: str) -> str:
    return token[:DISPLAY_PREFIX_LENGTH]
