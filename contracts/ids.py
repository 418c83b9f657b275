"""Time-ordered identifiers (UUIDv7, RFC 9562) without a third-party dependency."""

from __future__ import annotations

import os
import time
import uuid


def uuid7(*, unix_ms: int | None = None, rand: bytes | None = None) -> uuid.UUID:
    """A UUIDv7: 48 bits of Unix milliseconds, version, 74 random bits, variant.

    ``unix_ms`` and ``rand`` can be passed in so that pure code stays deterministic.
    """
    ms = time.time_ns() // 1_000_000 if unix_ms is None else unix_ms
    tail = rand if rand is not None else os.urandom(10)
    if len(tail) != 10:
        raise ValueError("rand must be 10 bytes")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= (int.from_bytes(tail[:2], "big") & 0x0FFF) << 64
    value |= 0b10 << 62
    value |= int.from_bytes(tail[2:], "big") & ((1 << 62) - 1)
    return uuid.UUID(int=value)


def new_id() -> str:
    return str(uuid7())
