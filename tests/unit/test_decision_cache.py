"""The gateway's hot decision copy: never older than what an event already said."""

from __future__ import annotations

import asyncio
import datetime as dt

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from contracts.events.releases import Blocker, ReleaseDecided, ReleasePromoted
from contracts.rpc.release_decision import Baseline, DecisionRequest, DecisionView
from services.gateway.decision_cache import DecisionCache

REPO = "acme/web"
SHA = "a" * 40
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def decided(revision: int, decision: str = "NO_SHIP", commit: str = SHA) -> ReleaseDecided:
    return ReleaseDecided(
        repo=REPO,
        commit=commit,
        revision=revision,
        decision=decision,  # type: ignore[arg-type]
        blockers=[Blocker(code="vulnerability", message="m", ref="f")]
        if decision == "NO_SHIP"
        else [],
        policy_version=1,
        evaluated_at=T0 + dt.timedelta(minutes=revision),
    )


def answer(revision: int, decision: str = "NO_SHIP", commit: str = SHA) -> DecisionView:
    return DecisionView(
        repo=REPO,
        commit=commit,
        decision=decision,  # type: ignore[arg-type]
        blockers=[],
        evaluated_at=T0,
        policy_version=1,
        revision=revision,
    )


def promoted(snapshot: str) -> ReleasePromoted:
    return ReleasePromoted(
        promotion_id=f"p-{snapshot}",
        snapshot_id=snapshot,
        project_id="p",
        repo=REPO,
        commit=SHA,
        target_status="production",
        decision="SHIP",
        promoted_by="apikey:x",
        promoted_at=T0,
    )


def live(size: int = 10) -> DecisionCache:
    cache = DecisionCache(size=size)
    cache.live = True
    return cache


def read(cache: DecisionCache, owner: DecisionView, commit: str = SHA) -> DecisionView:
    async def ask() -> DecisionView:
        return owner

    return asyncio.run(cache.read_through(DecisionRequest(repo=REPO, commit=commit), ask))


def test_a_miss_asks_and_keeps_then_an_event_replaces_it() -> None:
    cache = live()
    assert read(cache, answer(1)).revision == 1
    assert cache.get(REPO, SHA) is not None
    cache.decided(decided(2, "SHIP"))
    got = cache.get(REPO, SHA.upper())
    assert got is not None and got.decision == "SHIP" and got.revision == 2


def test_a_late_owner_answer_never_overwrites_a_newer_event() -> None:
    cache = live()
    read(cache, answer(1))
    cache.decided(decided(3, "SHIP"))
    cache.offer(answer(2), stamp=(0, 0))
    got = cache.get(REPO, SHA)
    assert got is not None and got.revision == 3
    cache.decided(decided(2))  # a late, older event
    assert cache.get(REPO, SHA).revision == 3  # type: ignore[union-attr]


def test_an_event_for_a_repo_without_a_known_baseline_makes_the_next_read_ask() -> None:
    cache = live()
    cache.decided(decided(4))
    assert cache.get(REPO, SHA) is None
    cache.offer(answer(3), stamp=(0, 0))  # asked before rev 4 was seen
    assert cache.get(REPO, SHA) is None
    assert read(cache, answer(4)).revision == 4
    assert cache.get(REPO, SHA) is not None


def test_promotion_moves_the_baseline_and_voids_answers_asked_before_it() -> None:
    cache = live()
    read(cache, answer(1))
    cache.promoted(promoted("s2"))
    assert cache.get(REPO, SHA).baseline.snapshot_id == "s2"  # type: ignore[union-attr]
    other = "b" * 40
    cache.offer(answer(1, commit=other), stamp=(0, 0))
    assert cache.get(REPO, other) is None
    cache.decided(decided(1, commit=other))
    assert cache.get(REPO, other).baseline == Baseline(  # type: ignore[union-attr]
        snapshot_id="s2",
        commit_sha=SHA,
        promotion_id="p-s2",
        target_status="production",
        promoted_at=T0,
    )


def test_invalidation_drops_entries_and_voids_answers_in_flight() -> None:
    cache = live()
    read(cache, answer(1))
    other = "c" * 40
    read(cache, answer(1, commit=other))
    stamp = cache.stamp(REPO)
    cache.invalidate(REPO)
    assert cache.get(REPO, SHA) is None and cache.get(REPO, other) is None
    cache.offer(answer(1), stamp=stamp)  # asked before the invalidation
    assert cache.get(REPO, SHA) is None
    read(cache, answer(2))
    stamp = cache.stamp(REPO)
    cache.invalidate()
    cache.offer(answer(2), stamp=stamp)
    assert len(cache) == 0
    cache.decided(decided(3))  # the repo's baseline is forgotten too: the next read asks
    assert cache.get(REPO, SHA) is None


def test_head_as_of_and_never_decided_are_not_cached_and_size_is_bounded() -> None:
    cache = live(size=2)
    asked = []

    async def ask() -> DecisionView:
        asked.append(1)
        return answer(0)

    asyncio.run(cache.read_through(DecisionRequest(repo=REPO, commit="HEAD"), ask))
    asyncio.run(cache.read_through(DecisionRequest(repo=REPO, commit=SHA, as_of=T0), ask))
    asyncio.run(cache.read_through(DecisionRequest(repo=REPO, commit=SHA), ask))
    assert len(asked) == 3 and len(cache) == 0
    for n in range(5):
        read(cache, answer(1, commit=f"{n:x}" * 40))
    assert len(cache) == 2


def test_not_live_or_size_zero_always_asks() -> None:
    for cache in (DecisionCache(size=10), live(size=0)):
        read(cache, answer(1))
        assert cache.get(REPO, SHA) is None


@st.composite
def _operations(draw: st.DrawFn) -> list[tuple[str, int]]:
    kinds = st.sampled_from(["decided", "offer_fresh", "offer_stale", "promoted", "read"])
    return draw(st.lists(st.tuples(kinds, st.integers(1, 6)), max_size=40))


@given(_operations())
def test_never_older_than_an_applied_event_and_always_the_latest_baseline(
    operations: list[tuple[str, int]],
) -> None:
    cache = live(size=3)
    newest = 0
    baseline: str | None = None
    for kind, revision in operations:
        if kind == "decided":
            cache.decided(decided(revision))
            newest = max(newest, revision)
        elif kind == "promoted":
            baseline = f"s{revision}"
            cache.promoted(promoted(baseline))
        elif kind in ("offer_fresh", "offer_stale"):
            generation, promotions = cache.stamp(REPO)
            view = answer(revision)
            if baseline is not None:
                view = msgspec.structs.replace(view, baseline=Baseline(snapshot_id=baseline))
            cache.offer(view, stamp=(generation, promotions - (kind == "offer_stale")))
        held = cache.get(REPO, SHA)
        if held is not None:
            assert held.revision >= newest
            if baseline is not None:
                assert held.baseline.snapshot_id == baseline
