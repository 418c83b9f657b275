"""Time-ordered identifiers (UUIDv7, RFC 9562) without a third-party dependency."""

from __future__ import annotations

import os
import threading
import time
import uuid

_MS_LIMIT = 1 << 48
# rand_a (12 bits) and rand_b (62 bits) taken together as one 74-bit number.
_RAND_BITS = 74
_RAND_B_MASK = (1 << 62) - 1


def _compose(unix_ms: int, rand: int) -> uuid.UUID:
    value = unix_ms << 80
    value |= 0x7 << 76  # version 7
    value |= (rand >> 62) << 64  # rand_a
    value |= 0b10 << 62  # variant (RFC 9562)
    value |= rand & _RAND_B_MASK  # rand_b
    return uuid.UUID(int=value)


def uuid7(*, unix_ms: int | None = None, rand: bytes | None = None) -> uuid.UUID:
    """A UUIDv7: 48 bits of Unix milliseconds, version, 74 random bits, variant.

    ``unix_ms`` and ``rand`` can be passed in so that pure code stays deterministic.
    """
    ms = time.time_ns() // 1_000_000 if unix_ms is None else unix_ms
    if not 0 <= ms < _MS_LIMIT:
        # Masking would silently wrap and break the time order the ids promise.
        raise ValueError(f"unix_ms must fit in 48 bits, got {ms}")
    tail = rand if rand is not None else os.urandom(10)
    if len(tail) != 10:
        raise ValueError("rand must be 10 bytes")
    rand_a = int.from_bytes(tail[:2], "big") & 0x0FFF
    rand_b = int.from_bytes(tail[2:], "big") & _RAND_B_MASK
    return _compose(ms, (rand_a << 62) | rand_b)


class _MonotonicSource:
    """RFC 9562 §6.2 method 2: within one millisecond (or if the clock steps back) the next
    id is the previous one plus one, so the ids of one process are strictly increasing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_rand = 0

    def next(self) -> uuid.UUID:
        with self._lock:
            ms = time.time_ns() // 1_000_000
            if ms > self._last_ms:
                rand = _fresh_rand()
            else:
                ms, rand = self._last_ms, self._last_rand + 1
                if rand >= 1 << _RAND_BITS:  # 2**73 ids in one millisecond: move on a tick
                    ms, rand = ms + 1, _fresh_rand()
            self._last_ms, self._last_rand = ms, rand
            return _compose(ms, rand)


def _fresh_rand() -> int:
    """73 random bits: the top bit stays clear, as headroom for the increments."""
    return int.from_bytes(os.urandom(10), "big") >> (80 - _RAND_BITS + 1)


_source = _MonotonicSource()


def new_id() -> str:
    """A new UUIDv7 string; strictly increasing within this process."""
    return str(_source.next())


def uuid7_unix_ms(value: uuid.UUID | str) -> int:
    """The Unix milliseconds a UUIDv7 was made at."""
    parsed = value if isinstance(value, uuid.UUID) else uuid.UUID(value)
    return parsed.int >> 80
