"""The gateway's hot copy of the registry reads every ``pip install`` makes: the simple
index of a package (``artifact_index``) and "may this file be downloaded" (``artifact_fetch``,
kept only when the answer is *allowed*). A warm ``pip install`` then costs no round trip to
the scanner; a blocked or quarantined file is always asked (its 451 names the block, and
``block.hit`` counts each refusal).

An LRU of at most ``settings.registry_cache_size`` answers (0: off), kept current by ordered
JetStream consumers on ``repository.>``, ``artifact.>`` and ``block.>``
(``services.gateway.event_feed``) that start at the stream's end:

* an event naming a repository (``repository.*``'s ``id``, any other's ``repo_id`` /
  ``to_repo_id``) drops that repository's answers;
* any other event — a block created, changed or deleted, an event this gateway cannot decode
  — drops everything (a block may name any artifact); ``block.hit`` changes nothing.

**Never older than an event already applied here.** The scanner's read model may apply an
event after this feed did. So every answer says through which stream sequence the read model
had applied everything when it was read (``applied_through``), and an answer is kept only
when that is not below the newest event this cache applied for its repository (or for
everything), nor below the stream's last sequence when the feed started (what passed before
it was never seen here). An event applied after an answer was kept drops it.

**Read-your-writes on this replica.** A registry write through this gateway (an upload, a
delete, a block, a quarantine decision, a repository change: every scanner operation that is
not a known read) drops everything once the scanner answers, and refuses the answers of reads
that were in flight; the scanner answers a write only after its read model applied it, so the
next read asks and sees it. Other replicas see it when the event arrives, milliseconds later —
as the scanner's own read model does.

After a NATS reconnect the cache starts over and keeps nothing until it has read the stream's
last sequence again. As a safety net against an invalidation that never came, an answer is
served for :data:`MAX_AGE_SECONDS` at the most.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, NamedTuple

import nats.errors
from prometheus_client import Counter, Gauge

from contracts.envelope import Event
from contracts.events.registry import BlockHit
from contracts.rpc import registry as rpc
from services.gateway.event_feed import EventFeed
from shared.bus import Bus
from shared.logging import get_logger

log = get_logger(__name__)

MAX_AGE_SECONDS = 60.0
REGISTRY_FEED_KEY = "registry_feed"
SUBJECTS = ("repository.>", "artifact.>", "block.>")
# Newest sequences are remembered per repository up to this many times the cache's size.
_MARKS_FACTOR = 4
# "Unknown": nothing is kept until the stream's last sequence is read.
_UNKNOWN = 2**63

# The scanner's registry operations that change nothing; every other one it answers through
# this gateway may have (and drops the cache).
REGISTRY_READS = frozenset(
    {
        rpc.REPOSITORY_LIST,
        rpc.REPOSITORY_GET,
        rpc.ARTIFACT_FETCH,
        rpc.ARTIFACT_INDEX,
        rpc.ARTIFACT_LIST,
        rpc.ARTIFACT_GET,
        rpc.ARTIFACT_DIGEST_USES,
        rpc.BLOCK_LIST,
        rpc.BLOCK_GET,
        rpc.QUARANTINE_LIST,
    }
)

READS = Counter(
    "gatehouse_registry_cache_reads_total",
    "Registry reads of the package routes at the gateway: hit (hot copy), miss (asked, maybe "
    "kept), bypass (cache off or not live: asked)",
    ["kind", "outcome"],
)
ENTRIES = Gauge("gatehouse_registry_cache_entries", "Registry answers held hot by the gateway")
FEED_EVENTS = Counter(
    "gatehouse_registry_feed_events_total",
    "repository.*, artifact.* and block.* events the gateway's registry feed applied",
    ["type"],
)

Key = tuple[str, str, str, str]  # (kind, project id, repository slug, name or path)
Answer = rpc.ArtifactIndexReply | rpc.ArtifactFetchReply


def index_key(ref: rpc.RepositoryRef, name: str | None) -> Key:
    return ("index", ref.project_id or "", ref.slug or "", name or "")


def fetch_key(ref: rpc.RepositoryRef, path: str) -> Key:
    return ("fetch", ref.project_id or "", ref.slug or "", path)


class Stamp(NamedTuple):
    """Taken before a miss asks; the answer is kept only if it still matches."""

    generation: int


class _Entry(NamedTuple):
    stored_at: float
    repo_id: str
    answer: Answer


def repositories_named(payload: Any) -> list[str] | None:
    """The repositories an event changes the answers of; None: possibly every one."""
    if isinstance(payload, BlockHit):
        return []
    event_type = getattr(payload, "event_type", "")
    if event_type.startswith("repository."):
        return [payload.id]
    named = [
        value
        for field in ("repo_id", "from_repo_id", "to_repo_id")
        if isinstance(value := getattr(payload, field, None), str)
    ]
    return named or None


class RegistryReadCache:
    def __init__(
        self,
        *,
        size: int,
        max_age: float = MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.size = size
        self.max_age = max_age
        self.live = False
        self._clock = clock
        self._entries: OrderedDict[Key, _Entry] = OrderedDict()
        self._by_repo: dict[str, set[Key]] = {}
        # Bumped whenever everything is dropped: no answer asked before is kept.
        self._generation = 0
        # Newest sequence applied per repository, and for every repository at once.
        self._repo_seen: OrderedDict[str, int] = OrderedDict()
        self._all_seen = 0
        # The stream's last sequence when the feed (re)started: older events were not seen.
        self._floor = _UNKNOWN

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def enabled(self) -> bool:
        return bool(self.live and self.size)

    # ---- reads ---------------------------------------------------------------------------
    def get(self, key: Key) -> Answer | None:
        found = self._entries.get(key)
        if found is None:
            return None
        if self._clock() - found.stored_at > self.max_age:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return found.answer

    def stamp(self) -> Stamp:
        return Stamp(self._generation)

    def newest_seen(self, repo_id: str) -> int:
        return max(self._floor, self._all_seen, self._repo_seen.get(repo_id, 0))

    def offer(self, key: Key, answer: Answer, *, stamp: Stamp) -> bool:
        """Keep an answer asked with ``stamp`` unless something it does not reflect was
        applied here (or everything was dropped) since."""
        if not self.enabled or stamp.generation != self._generation:
            return False
        if isinstance(answer, rpc.ArtifactFetchReply) and answer.verdict != "allowed":
            return False
        repo_id = answer.repository.id
        if answer.applied_through <= 0 or answer.applied_through < self.newest_seen(repo_id):
            return False
        self._drop(key)
        self._entries[key] = _Entry(self._clock(), repo_id, answer)
        self._by_repo.setdefault(repo_id, set()).add(key)
        while len(self._entries) > self.size:
            self._drop(next(iter(self._entries)))
        ENTRIES.set(len(self._entries))
        return True

    # ---- changes ---------------------------------------------------------------------------
    def apply(self, event: Event) -> None:
        named = repositories_named(event.payload)
        if named is None:
            self.changed_everything(event.sequence)
        for repo_id in named or ():
            self.changed(repo_id, event.sequence)

    def changed(self, repo_id: str, sequence: int) -> None:
        """The event at ``sequence`` changed ``repo_id``'s answers."""
        self._repo_seen[repo_id] = max(sequence, self._repo_seen.pop(repo_id, 0))
        while len(self._repo_seen) > max(self.size, 1) * _MARKS_FACTOR:
            _, forgotten = self._repo_seen.popitem(last=False)
            self._all_seen = max(self._all_seen, forgotten)
        for key in self._by_repo.pop(repo_id, ()):
            self._entries.pop(key, None)
        ENTRIES.set(len(self._entries))

    def changed_everything(self, sequence: int) -> None:
        """The event at ``sequence`` (0: unknown) may have changed any answer."""
        self._all_seen = max(self._all_seen, sequence)
        self.invalidate()

    def invalidate(self) -> None:
        """Drop everything and refuse the answers in flight (a write through this gateway)."""
        self._generation += 1
        self._entries.clear()
        self._by_repo.clear()
        ENTRIES.set(0)

    def clear(self) -> None:
        """Events may have been missed (a reconnect): keep nothing until :meth:`rearm`."""
        self._floor = _UNKNOWN
        self.invalidate()

    def rearm(self, last_sequence: int) -> None:
        """The stream's last sequence, read after the feed's consumers (re)started."""
        self._floor = last_sequence

    # ---- internals ---------------------------------------------------------------------------
    def _drop(self, key: Key) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        keys = self._by_repo.get(entry.repo_id)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_repo[entry.repo_id]
        ENTRIES.set(len(self._entries))


class RegistryFeed(EventFeed):
    """The ordered consumers that keep a :class:`RegistryReadCache` current, and what the
    cache needs of the stream besides: its last sequence at each (re)start."""

    cache: RegistryReadCache

    def __init__(self, bus: Bus, cache: RegistryReadCache) -> None:
        super().__init__(bus, cache, subjects=SUBJECTS, applied=FEED_EVENTS, name="registry_feed")
        self._rearming: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await super().start()
        if self.cache.live:
            # After the consumers exist: anything up to this sequence they may not deliver.
            await self._rearm()

    async def stop(self) -> None:
        await super().stop()
        if self._rearming is not None:
            self._rearming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._rearming

    def check_connection(self) -> None:
        reconnects = self._reconnects
        super().check_connection()
        if reconnects != self._reconnects and self.cache.live:
            if self._rearming is None or self._rearming.done():
                self._rearming = asyncio.create_task(self._rearm(), name="registry-feed-rearm")

    async def _rearm(self) -> None:
        try:
            info = await self.bus.js.stream_info(self.bus.stream)
        except (nats.errors.Error, TimeoutError) as exc:
            # Not re-armed: nothing is kept until the next reconnect re-arms it.
            log.warning("registry_feed_rearm_failed", error=f"{type(exc).__name__}: {exc}")
            return
        self.cache.rearm(info.state.last_seq)

    def undecodable(self, sequence: int) -> None:
        # An event this gateway cannot read may have changed anything it holds.
        self.cache.changed_everything(sequence)


def registry_feed(runtime_state: dict[str, Any]) -> RegistryFeed | None:
    found = runtime_state.get(REGISTRY_FEED_KEY)
    return found if isinstance(found, RegistryFeed) else None


def registry_changed(runtime_state: dict[str, Any], service: str, operation: str) -> None:
    """After the scanner answered (or failed) ``operation`` for this gateway: a write may
    have changed any registry answer (read-your-writes on this replica)."""
    if service != rpc.SERVICE or operation in REGISTRY_READS:
        return
    feed = registry_feed(runtime_state)
    if feed is not None:
        feed.cache.invalidate()
