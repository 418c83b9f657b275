"""Token buckets: ``rate`` tokens per second refill up to ``burst``; a request takes one."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Bucket:
    tokens: float
    updated_at: float  # monotonic seconds


def full_bucket(*, burst: int, now: float) -> Bucket:
    return Bucket(tokens=float(burst), updated_at=now)


def take(bucket: Bucket, *, now: float, rate: float, burst: int) -> tuple[Bucket, int]:
    """The bucket after one request, and 0 if it was allowed or else the whole seconds to wait
    (at least 1, for ``Retry-After``)."""
    elapsed = max(0.0, now - bucket.updated_at)
    tokens = min(float(burst), bucket.tokens + elapsed * rate)
    if tokens >= 1.0:
        return Bucket(tokens - 1.0, now), 0
    return Bucket(tokens, now), max(1, math.ceil((1.0 - tokens) / rate))


def wait_needed(bucket: Bucket, *, now: float, rate: float, burst: int) -> int:
    """0 if the bucket holds a token now, else the whole seconds until it does (at least 1);
    takes nothing."""
    return take(bucket, now=now, rate=rate, burst=burst)[1]


def is_full(bucket: Bucket, *, now: float, rate: float, burst: int) -> bool:
    """A full bucket carries no information and can be forgotten."""
    return bucket.tokens + max(0.0, now - bucket.updated_at) * rate >= burst
