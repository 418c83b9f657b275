"""The gateway's hot copy of current decisions, kept current by the events that change them.

An LRU of ``DecisionView`` per (repo, commit), at most ``settings.decision_cache_size``
entries (0: off). An ordered JetStream consumer on ``release.>``, started with the gateway
at the stream's end, applies:

* ``release.decided``: the entry becomes the event's view (it carries the whole decision);
  the baseline comes from what the cache knows of the repo, and when it knows nothing the
  entry is dropped instead, so the next read asks the owner;
* ``release.promoted``: the repo's baseline changes in every entry of that repo.

A miss asks release-decision (``decision_get``) and keeps the answer only if nothing newer
arrived meanwhile: its revision is not below the newest seen for that commit, and no
promotion of the repo was applied while it was asked. So once a ``release.decided`` has
been applied here, no older view is ever served again. Never cached: HEAD and ``as_of``
reads, and revision 0 (never decided: no event would tell the cache it changed). After a
NATS reconnect the cache starts empty: events may have been missed while disconnected.

A promotion or a policy change made through this gateway drops what it affects as soon as
the owner answers (``invalidate``), so the caller's next read shows it; other replicas show
it when the events arrive, milliseconds later.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable

import msgspec
from prometheus_client import Counter, Gauge

from contracts.envelope import Event
from contracts.events.releases import ReleaseDecided, ReleasePromoted
from contracts.rpc.release_decision import Baseline, DecisionRequest, DecisionView
from services.gateway.event_feed import EventFeed
from shared.bus import Bus

READS = Counter(
    "gatehouse_decision_cache_reads_total",
    "Decision reads at the gateway: hit (hot copy), miss (asked, maybe kept), bypass (HEAD, "
    "as_of, cache off or not live yet: asked)",
    ["outcome"],
)
ENTRIES = Gauge("gatehouse_decision_cache_entries", "Decisions held hot by the gateway")
FEED_EVENTS = Counter(
    "gatehouse_decision_feed_events_total",
    "release.* events the gateway's decision feed applied",
    ["type"],
)
# Bound once: the hit path is every decision read.
_HIT, _MISS, _BYPASS = (READS.labels(o) for o in ("hit", "miss", "bypass"))

SUBJECT = "release.>"
Key = tuple[str, str]
# Newest revision per commit is remembered beyond the LRU's size, up to this many times it.
_REVISION_MEMORY_FACTOR = 2


def view_of(event: ReleaseDecided, baseline: Baseline) -> DecisionView:
    return DecisionView(
        repo=event.repo,
        commit=event.commit,
        project_id=event.project_id,
        decision=event.decision,
        blockers=list(event.blockers),
        blocker_total=event.blocker_total,
        baseline=baseline,
        evaluated_at=event.evaluated_at,
        policy_version=event.policy_version,
        policy_scope=event.policy_scope,
        revision=event.revision,
        evidence=event.evidence,
    )


def baseline_of(event: ReleasePromoted) -> Baseline:
    return Baseline(
        snapshot_id=event.snapshot_id,
        commit_sha=event.commit,
        promotion_id=event.promotion_id,
        target_status=event.target_status,
        promoted_at=event.promoted_at,
    )


def cacheable(request: DecisionRequest) -> bool:
    return request.as_of is None and request.commit != "HEAD"


def key_of(repo: str, commit: str) -> Key:
    # Repos are one whatever their case (release-decision keys them in lower case).
    return repo.lower(), commit.lower()


class DecisionCache:
    def __init__(self, *, size: int) -> None:
        self.size = size
        self._views: OrderedDict[Key, DecisionView] = OrderedDict()
        # Newest revision seen per commit (also for commits not held), so a late RPC answer
        # can never put an older view back.
        self._revisions: OrderedDict[Key, int] = OrderedDict()
        self._baselines: dict[str, Baseline] = {}
        # Promotions applied per repo: an RPC answer asked before one is not kept.
        self._promotions: dict[str, int] = {}
        # Bumped when everything is dropped: no answer asked before is kept.
        self._generation = 0
        self.live = False
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._views)

    # ---- reads ---------------------------------------------------------------------------
    def get(self, repo: str, commit: str) -> DecisionView | None:
        key = key_of(repo, commit)
        view = self._views.get(key)
        if view is None:
            self.misses += 1
            return None
        self._views.move_to_end(key)
        self.hits += 1
        return view

    async def read_through(
        self, request: DecisionRequest, ask: Callable[[], Awaitable[DecisionView]]
    ) -> DecisionView:
        if not (self.live and self.size and cacheable(request)):
            _BYPASS.inc()
            return await ask()
        found = self.get(request.repo, request.commit)
        if found is not None:
            _HIT.inc()
            return found
        _MISS.inc()
        stamp = self.stamp(request.repo)
        view = await ask()
        self.offer(view, stamp=stamp)
        return view

    def stamp(self, repo: str) -> tuple[int, int]:
        """What an answer asked now must still match to be kept: the cache's generation and
        the repo's count of promotions (and invalidations)."""
        return self._generation, self._promotions.get(repo.lower(), 0)

    def offer(self, view: DecisionView, *, stamp: tuple[int, int]) -> None:
        """Keep an answer of the owner unless something newer was applied meanwhile."""
        if view.revision == 0 or not self.live:
            return
        if self.stamp(view.repo) != stamp:
            return
        key = key_of(view.repo, view.commit)
        if view.revision < self._revisions.get(key, 0):
            return
        self._baselines.setdefault(key[0], view.baseline)
        self._put(key, view)

    # ---- events ----------------------------------------------------------------------------
    def decided(self, event: ReleaseDecided) -> None:
        key = key_of(event.repo, event.commit)
        if event.revision < self._revisions.get(key, 0):
            return  # an older revision delivered late: never go back
        self._remember_revision(key, event.revision)
        baseline = self._baselines.get(key[0])
        if baseline is None:
            self._views.pop(key, None)
            return
        self._put(key, view_of(event, baseline))

    def promoted(self, event: ReleasePromoted) -> None:
        baseline = baseline_of(event)
        repo = event.repo.lower()
        self._baselines[repo] = baseline
        self._promotions[repo] = self._promotions.get(repo, 0) + 1
        for key, view in self._views.items():
            if key[0] == repo:
                self._views[key] = msgspec.structs.replace(view, baseline=baseline)

    def clear(self) -> None:
        """Forget everything (events may have been missed); revisions are kept."""
        self._generation += 1
        self._views.clear()
        self._baselines.clear()
        ENTRIES.set(0)

    def invalidate(self, repo: str | None = None) -> None:
        """This gateway just had the owner change decisions (a promotion of ``repo``; a
        policy: every repo) whose events have not arrived yet: drop what they change, so the
        caller's next read asks the owner (read-your-writes)."""
        if repo is None:
            self.clear()
            return
        repo = repo.lower()
        self._promotions[repo] = self._promotions.get(repo, 0) + 1
        self._baselines.pop(repo, None)
        for key in [key for key in self._views if key[0] == repo]:
            del self._views[key]
        ENTRIES.set(len(self._views))

    def apply(self, event: Event) -> None:
        payload = event.payload
        if isinstance(payload, ReleaseDecided):
            self.decided(payload)
        elif isinstance(payload, ReleasePromoted):
            self.promoted(payload)

    # ---- internals ---------------------------------------------------------------------------
    def _put(self, key: Key, view: DecisionView) -> None:
        if not self.size:
            return
        self._views[key] = view
        self._views.move_to_end(key)
        self._remember_revision(key, view.revision)
        while len(self._views) > self.size:
            self._views.popitem(last=False)
        ENTRIES.set(len(self._views))

    def _remember_revision(self, key: Key, revision: int) -> None:
        self._revisions[key] = max(revision, self._revisions.get(key, 0))
        self._revisions.move_to_end(key)
        limit = max(self.size, 1) * _REVISION_MEMORY_FACTOR
        while len(self._revisions) > limit:
            evicted, _ = self._revisions.popitem(last=False)
            # A view whose revision is forgotten could be overwritten by an older answer.
            self._views.pop(evicted, None)


class DecisionFeed(EventFeed):
    """The ordered consumer that keeps a :class:`DecisionCache` current."""

    cache: DecisionCache

    def __init__(self, bus: Bus, cache: DecisionCache) -> None:
        super().__init__(bus, cache, subjects=(SUBJECT,), applied=FEED_EVENTS, name="decision_feed")
