"""The gateway's hot copy of the commits API's answers, dropped by the events that change them.

An LRU of signature-verifier replies, at most ``settings.commits_cache_size`` entries (0:
off): a ``commits_list`` page per (repo, sha, path, author, since, until, page, per_page),
kept as its encoded JSON body, and a ``commit_get`` reply per (repo, full sha) — a prefix
is never a key (what it names can change as commits arrive), its answer is kept under the
full sha it resolved to. Only the owner's answer is kept: scope and roles are checked per
request before the cache, and the release decision is stitched in per request.

Every repo's entries are dropped (and its in-flight misses refused) by the events that can
change what it lists, from ordered JetStream consumers (``services.gateway.event_feed``):
``commit.verified``, ``commit.pushed``, ``mirror.configured``, ``mirror.removed`` and
``mirror.fetched`` (a fetch moved a branch or tag). A miss stamps the repo's epoch before it
asks and keeps the answer only if no invalidation of the repo (or of everything) came
meanwhile. Events applied by the owner's projections (``commit.verified`` → verification
rows, ``mirror.configured``/``removed`` → mirror rows) may reach the gateway before the
owner applied them: a miss passes the newest such sequence seen for the repo
(``verifications_at``/``mirror_at``), and the owner answers only once applied — so a kept
answer is never older than an event this cache already applied.

The gateway's own mirror and key writes drop what they change before answering
(``invalidate``); a NATS reconnect empties everything. As a safety net against an
invalidation that never came (a fetcher that crashed before announcing), an entry is served
for :data:`MAX_AGE_SECONDS` at the most.
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

from prometheus_client import Counter, Gauge

from contracts.envelope import Event
from contracts.events.commits import CommitPushed, CommitVerified
from contracts.events.signatures import MirrorConfigured, MirrorFetched, MirrorRemoved
from contracts.rpc import signatures as rpc
from services.gateway.event_feed import EventFeed
from services.gateway.routing import RequestContext
from shared.bus import Bus

MAX_AGE_SECONDS = 30.0
COMMITS_FEED_KEY = "commits_feed"
SUBJECTS = ("commit.>", "mirror.>")
# Invalidation marks are kept per repo beyond the LRU's size, up to this many times it.
_MARKS_FACTOR = 4
_FULL_SHA_LENGTHS = (40, 64)

READS = Counter(
    "gatehouse_commits_cache_reads_total",
    "Commits API reads at the gateway: hit (hot copy), miss (asked, maybe kept), bypass "
    "(cache off or not live, or a sha prefix: asked)",
    ["outcome"],
)
ENTRIES = Gauge("gatehouse_commits_cache_entries", "Commits pages and commits held hot")
FEED_EVENTS = Counter(
    "gatehouse_commits_feed_events_total",
    "commit.* and mirror.* events the gateway's commits feed applied",
    ["type"],
)
HIT, MISS, BYPASS = (READS.labels(o) for o in ("hit", "miss", "bypass"))


class ListedPage(NamedTuple):
    """A ``commits_list`` answer as served: the JSON array's bytes and whether a next page
    exists (the Link header is the caller's URL's, built per request)."""

    body: bytes
    has_next: bool


class _Marks(NamedTuple):
    epoch: int  # the counter's value at the repo's last invalidation
    verifications_at: int
    mirror_at: int


_NO_MARKS = _Marks(0, 0, 0)


class ReadStamp(NamedTuple):
    """What a miss must still match to be kept, and the positions it asks the owner for."""

    repo_key: str
    generation: int
    epoch: int
    verifications_at: int
    mirror_at: int


def list_key(request: rpc.CommitsListRequest) -> Hashable:
    since, until = (_instant(moment) for moment in (request.since, request.until))
    return (
        "list",
        request.repo.lower(),
        request.sha,
        request.path,
        request.author,
        since,
        until,
        request.page,
        request.per_page,
    )


def commit_key(repo: str, sha: str) -> Hashable | None:
    """The key of a commit read by ``sha``: None for a prefix (never looked up by it)."""
    sha = sha.lower()
    if len(sha) not in _FULL_SHA_LENGTHS:
        return None
    return ("commit", repo.lower(), sha)


def _instant(moment: dt.datetime | None) -> float | None:
    # The same instant written with another offset lists the same commits.
    return None if moment is None else moment.timestamp()


class CommitsCache:
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
        self._entries: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._by_repo: dict[str, set[Hashable]] = {}
        # Bumped when everything is dropped: no answer asked before is kept.
        self._generation = 0
        self._counter = itertools.count(1)
        self._marks: OrderedDict[str, _Marks] = OrderedDict()
        # The highest marks of repos forgotten: a forgotten repo reads these (never lower).
        self._floor = _NO_MARKS

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def enabled(self) -> bool:
        return bool(self.live and self.size)

    # ---- reads ---------------------------------------------------------------------------
    def get(self, key: Hashable) -> Any | None:
        found = self._entries.get(key)
        if found is None:
            return None
        stored_at, value = found
        if self._clock() - stored_at > self.max_age:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return value

    def stamp(self, repo: str) -> ReadStamp:
        repo_key = repo.lower()
        marks = self._marks.get(repo_key, self._floor)
        return ReadStamp(
            repo_key, self._generation, marks.epoch, marks.verifications_at, marks.mirror_at
        )

    def offer(self, key: Hashable, value: Any, *, stamp: ReadStamp) -> bool:
        """Keep an answer asked with ``stamp`` unless the repo changed meanwhile."""
        if not self.enabled or self.stamp(stamp.repo_key) != stamp:
            return False
        self._drop(key)
        self._entries[key] = (self._clock(), value)
        self._by_repo.setdefault(stamp.repo_key, set()).add(key)
        while len(self._entries) > self.size:
            self._drop(next(iter(self._entries)))
        ENTRIES.set(len(self._entries))
        return True

    # ---- changes ---------------------------------------------------------------------------
    def apply(self, event: Event) -> None:
        payload = event.payload
        if isinstance(payload, CommitVerified):
            self.invalidate(payload.repo, verifications_at=event.sequence)
        elif isinstance(payload, MirrorConfigured | MirrorRemoved):
            self.invalidate(payload.repo, mirror_at=event.sequence)
        elif isinstance(payload, MirrorFetched | CommitPushed):
            self.invalidate(payload.repo)

    def invalidate(
        self, repo: str | None = None, *, verifications_at: int = 0, mirror_at: int = 0
    ) -> None:
        """Drop ``repo``'s entries (None: everything) and refuse its misses in flight; the
        positions are what its next misses ask the owner to have applied."""
        if repo is None:
            self.clear()
            return
        repo_key = repo.lower()
        old = self._marks.pop(repo_key, self._floor)
        self._marks[repo_key] = _Marks(
            next(self._counter),
            max(old.verifications_at, verifications_at),
            max(old.mirror_at, mirror_at),
        )
        while len(self._marks) > max(self.size, 1) * _MARKS_FACTOR:
            _, forgotten = self._marks.popitem(last=False)
            self._floor = _Marks(*(max(a, b) for a, b in zip(self._floor, forgotten, strict=True)))
        for key in self._by_repo.pop(repo_key, ()):
            self._entries.pop(key, None)
        ENTRIES.set(len(self._entries))

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()
        self._by_repo.clear()
        ENTRIES.set(0)

    # ---- internals ---------------------------------------------------------------------------
    def _drop(self, key: Hashable) -> None:
        if self._entries.pop(key, None) is None or not isinstance(key, tuple):
            return
        keys = self._by_repo.get(key[1])
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_repo[key[1]]


class CommitsFeed(EventFeed):
    """The ordered consumers that keep a :class:`CommitsCache` current."""

    cache: CommitsCache

    def __init__(self, bus: Bus, cache: CommitsCache) -> None:
        super().__init__(bus, cache, subjects=SUBJECTS, applied=FEED_EVENTS, name="commits_feed")


def commits_changed(ctx: RequestContext, *, repo: str | None = None) -> None:
    """A write through this gateway changed what ``repo`` lists (None: maybe any repo, as a
    key upload or deletion): drop it before answering, so the caller's next read asks the
    owner (read-your-writes on this replica)."""
    feed = ctx.runtime.state.get(COMMITS_FEED_KEY)
    if isinstance(feed, CommitsFeed):
        feed.cache.invalidate(repo)
