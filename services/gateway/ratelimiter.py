"""Per-process token-bucket rate limiting by key (an API key id or a client address).

Each replica limits on its own: with N replicas a client gets up to N times the rate, which
is the usual trade for not putting a shared store on every request's path.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from services.gateway.domain.errors import TooManyRequests
from services.gateway.domain.ratelimit import Bucket, full_bucket, is_full, take

# Beyond this many tracked clients, forget the ones whose buckets have refilled.
MAX_TRACKED = 50_000


class RateLimiter:
    def __init__(
        self,
        *,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_tracked: int = MAX_TRACKED,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._max_tracked = max_tracked
        self._buckets: dict[str, Bucket] = {}

    def check(self, client: str) -> None:
        """Take one token for ``client`` or raise 429 with ``Retry-After``."""
        now = self._clock()
        bucket = self._buckets.get(client) or full_bucket(burst=self.burst, now=now)
        bucket, retry_after = take(bucket, now=now, rate=self.rate, burst=self.burst)
        if client not in self._buckets and len(self._buckets) >= self._max_tracked:
            self._forget_idle(now)
        self._buckets[client] = bucket
        if retry_after:
            raise TooManyRequests(retry_after)

    def _forget_idle(self, now: float) -> None:
        for client, bucket in list(self._buckets.items()):
            if is_full(bucket, now=now, rate=self.rate, burst=self.burst):
                del self._buckets[client]
        # Still too many busy clients: drop the oldest entries (dicts keep insertion order).
        excess = len(self._buckets) - self._max_tracked // 2
        for client in list(self._buckets)[: max(0, excess)]:
            del self._buckets[client]

    def __len__(self) -> int:
        return len(self._buckets)
