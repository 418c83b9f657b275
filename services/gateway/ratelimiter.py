"""Per-process token-bucket rate limiting by key (an API key id or a client address).

Each replica limits on its own: with N replicas a client gets up to N times the rate, which
is the usual trade for not putting a shared store on every request's path.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from services.gateway.domain.errors import TooManyFailedAuthentications, TooManyRequests
from services.gateway.domain.ratelimit import Bucket, full_bucket, is_full, take, wait_needed

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
        retry_after = self.charge(client)
        if retry_after:
            raise TooManyRequests(retry_after)

    def charge(self, client: str) -> int:
        """Take one token for ``client``: 0, or the seconds until one is there if none was."""
        now = self._clock()
        bucket = self._buckets.get(client) or full_bucket(burst=self.burst, now=now)
        bucket, retry_after = take(bucket, now=now, rate=self.rate, burst=self.burst)
        if client not in self._buckets and len(self._buckets) >= self._max_tracked:
            self._forget_idle(now)
        self._buckets[client] = bucket
        return retry_after

    def wait_needed(self, client: str) -> int:
        """0 when ``client`` has a token now, else the seconds until it has; takes nothing."""
        bucket = self._buckets.get(client)
        if bucket is None:
            return 0
        return wait_needed(bucket, now=self._clock(), rate=self.rate, burst=self.burst)

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


class FailedAuthThrottle:
    """Failed authentications per client address, so that guessing tokens is cheap to refuse.

    Each failed authentication (an unknown, revoked or expired token) takes one token of the
    address's bucket. While the bucket is empty, a token the replica has not seen valid is
    refused with 429 ``too_many_failed_authentications`` before the database is asked; a
    token it has seen valid (in the key cache) is still looked up and served, so a client
    sharing the address keeps working.
    """

    def __init__(
        self, *, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._failures = RateLimiter(rate=rate, burst=burst, clock=clock)

    def check(self, address: str, *, known_token: bool) -> None:
        if known_token:
            return
        retry_after = self._failures.wait_needed(address)
        if retry_after:
            raise TooManyFailedAuthentications(retry_after)

    def failed(self, address: str) -> None:
        self._failures.charge(address)
