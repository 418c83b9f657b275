"""A per-process cache of API keys by token hash, valid only while the read model stands still.

Each entry remembers the projection checkpoint it was read at and is used only while the
checkpoint is unchanged. Any identity event applied (a revocation among them) moves the
checkpoint, so the next request reads the key again: a revocation answered by this replica
applies to its very next request, and on other replicas as soon as they see the new
checkpoint (LISTEN/NOTIFY, milliseconds). Expiry is checked on every request regardless.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prometheus_client import Counter

from services.gateway.domain.access import StoredKey
from shared.projection import ProjectionRunner

MAX_ENTRIES = 10_000

KEY_LOOKUPS = Counter(
    "gatehouse_gateway_key_lookups_total",
    "API keys read from the database to authenticate a request (key cache misses)",
)


class KeyCache:
    def __init__(self, runner: ProjectionRunner, *, max_entries: int = MAX_ENTRIES) -> None:
        self._runner = runner
        self._max_entries = max_entries
        self._entries: dict[str, tuple[int, StoredKey]] = {}
        # Database lookups made (cache misses), for the metric and the tests.
        self.loads = 0

    def known(self, token_sha256: str) -> bool:
        """Whether this token was a stored key when last read (even if stale since)."""
        return token_sha256 in self._entries

    async def lookup(
        self, token_sha256: str, load: Callable[[], Awaitable[StoredKey | None]]
    ) -> StoredKey | None:
        # Read before loading: a change applied while loading leaves the entry already stale.
        checkpoint = self._runner.checkpoint
        hit = self._entries.get(token_sha256)
        if hit is not None and hit[0] == checkpoint:
            return hit[1]
        self.loads += 1
        KEY_LOOKUPS.inc()
        key = await load()
        if key is None:  # unknown tokens are not remembered: nobody can fill the cache
            self._entries.pop(token_sha256, None)
            return None
        if len(self._entries) >= self._max_entries:
            self._entries.clear()
        self._entries[token_sha256] = (checkpoint, key)
        return key
