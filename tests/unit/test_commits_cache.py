"""The gateway's commits cache: an answer asked before a change of its repo is never kept, a
kept one is never older than an event already applied, and nothing is served past its age."""

from __future__ import annotations

import datetime as dt

from contracts.envelope import EventPayload, decode_event, encode_envelope, make_envelope
from contracts.events.commits import CommitPushed, CommitVerified
from contracts.events.signatures import (
    MirrorConfigured,
    MirrorFetched,
    MirrorRemoved,
    MirrorSyncRequested,
)
from contracts.rpc import signatures as rpc
from services.gateway.commits_cache import CommitsCache, ListedPage, commit_key, list_key
from services.signature_verifier.mirrors.domain.announce import fetched_id, refs_changed

REPO = "Acme/Web"
SHA = "a" * 40
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
PAGE = ListedPage(b"[]", False)


def event(payload: EventPayload, sequence: int) -> object:
    envelope = make_envelope(payload, source="t", aggregate="a", actor="t", occurred_at=T0)
    return decode_event(encode_envelope(envelope), sequence=sequence)


def verified(sequence: int, repo: str = REPO) -> object:
    payload = CommitVerified(repo=repo, commit=SHA, verified=True, reason="valid", verified_at=T0)
    return event(payload, sequence)


def live(size: int = 10, **kw: float) -> CommitsCache:
    cache = CommitsCache(size=size, **kw)  # type: ignore[arg-type]
    cache.live = True
    return cache


def test_an_answer_asked_before_an_invalidation_is_not_kept() -> None:
    cache = live()
    key = list_key(rpc.CommitsListRequest(repo=REPO))
    stamp = cache.stamp(REPO)
    cache.apply(verified(7))  # arrives while the miss is out
    assert not cache.offer(key, PAGE, stamp=stamp)
    assert cache.get(key) is None
    # Asked again, after: kept, and the owner is asked to have applied event 7.
    stamp = cache.stamp(REPO)
    assert stamp.verifications_at == 7 and stamp.mirror_at == 0
    assert cache.offer(key, PAGE, stamp=stamp)
    assert cache.get(key) == PAGE


def test_another_repos_change_keeps_the_answer() -> None:
    cache = live()
    key = list_key(rpc.CommitsListRequest(repo=REPO))
    stamp = cache.stamp(REPO)
    cache.apply(verified(3, repo="other/repo"))
    assert cache.offer(key, PAGE, stamp=stamp)


def test_clearing_refuses_every_answer_in_flight() -> None:
    cache = live()
    key = list_key(rpc.CommitsListRequest(repo=REPO))
    stamp = cache.stamp(REPO)
    cache.clear()  # a reconnect, a key upload
    assert not cache.offer(key, PAGE, stamp=stamp)


def test_each_event_kind_drops_the_repos_entries() -> None:
    changes: list[EventPayload] = [
        CommitVerified(repo=REPO, commit=SHA, verified=False, reason="invalid", verified_at=T0),
        CommitPushed(repo=REPO, commit=SHA, branch="x", source="git", head=True, pushed_at=T0),
        MirrorConfigured(repo=REPO, project_id="p", clone_url="file:///x"),
        MirrorRemoved(repo=REPO),
        MirrorFetched(repo=REPO, head=SHA, refs_changed=2),
    ]
    for sequence, payload in enumerate(changes, start=1):
        cache = live()
        key = list_key(rpc.CommitsListRequest(repo=REPO.lower(), page=2))
        assert cache.offer(key, PAGE, stamp=cache.stamp(REPO))
        cache.apply(event(payload, sequence))  # type: ignore[arg-type]
        assert cache.get(key) is None, payload.event_type
        assert len(cache) == 0
    # A sync request changes nothing by itself (its fetch announces what moved).
    cache = live()
    assert cache.offer("k", PAGE, stamp=cache.stamp(REPO)) is True
    cache.apply(event(MirrorSyncRequested(repo=REPO), 9))  # type: ignore[arg-type]
    assert cache.get("k") == PAGE


def test_mirror_events_name_the_mirror_position() -> None:
    cache = live()
    cache.apply(event(MirrorRemoved(repo=REPO), 11))  # type: ignore[arg-type]
    cache.apply(verified(12))
    cache.apply(event(MirrorFetched(repo=REPO, refs_changed=1), 13))  # type: ignore[arg-type]
    stamp = cache.stamp(REPO.upper())
    assert (stamp.mirror_at, stamp.verifications_at) == (11, 12)


def test_not_live_or_off_keeps_nothing() -> None:
    cache = CommitsCache(size=10)
    assert not cache.offer("k", PAGE, stamp=cache.stamp(REPO))
    off = live(size=0)
    assert not off.enabled
    assert not off.offer("k", PAGE, stamp=off.stamp(REPO))


def test_an_entry_is_served_for_its_max_age_at_the_most() -> None:
    now = [100.0]
    cache = live(max_age=30.0, clock=lambda: now[0])
    assert cache.offer("k", PAGE, stamp=cache.stamp(REPO))
    now[0] += 30.0
    assert cache.get("k") == PAGE
    now[0] += 0.5
    assert cache.get("k") is None and len(cache) == 0


def test_bounded_least_recently_used_first() -> None:
    cache = live(size=2)
    keys = [list_key(rpc.CommitsListRequest(repo=REPO, page=p)) for p in (1, 2, 3)]
    assert cache.offer(keys[0], PAGE, stamp=cache.stamp(REPO))
    assert cache.offer(keys[1], PAGE, stamp=cache.stamp(REPO))
    cache.get(keys[0])
    assert cache.offer(keys[2], PAGE, stamp=cache.stamp(REPO))
    assert len(cache) == 2 and cache.get(keys[1]) is None and cache.get(keys[0]) == PAGE


def test_forgotten_repos_never_read_older_marks() -> None:
    cache = live(size=1)  # marks for 4 repos at the most
    stamp = cache.stamp(REPO)
    cache.apply(verified(50))
    for n in range(10):  # pushes REPO's marks out
        cache.apply(verified(100 + n, repo=f"r/{n}"))
    later = cache.stamp(REPO)
    assert later != stamp  # the miss out since before is still refused
    assert later.verifications_at >= 50


def test_keys() -> None:
    east = dt.timezone(dt.timedelta(hours=2))
    utc = rpc.CommitsListRequest(repo=REPO, since=T0)
    same_instant = rpc.CommitsListRequest(repo=REPO.lower(), since=T0.astimezone(east))
    assert list_key(utc) == list_key(same_instant)
    assert list_key(utc) != list_key(rpc.CommitsListRequest(repo=REPO, since=T0, page=2))
    assert list_key(rpc.CommitsListRequest(repo=REPO, sha="Main")) != list_key(
        rpc.CommitsListRequest(repo=REPO, sha="main")
    )
    # A prefix is never a key: what it names changes as commits arrive.
    assert commit_key(REPO, SHA[:12]) is None
    assert commit_key(REPO, SHA.upper()) == commit_key(REPO.lower(), SHA)
    assert commit_key(REPO, "b" * 64) is not None


def test_refs_changed_and_fetched_ids() -> None:
    before = {"refs/heads/main": "1", "refs/tags/v1": "2", "HEAD": "refs/heads/main"}
    after = {"refs/heads/main": "3", "refs/heads/new": "4", "HEAD": "refs/heads/main"}
    assert refs_changed(before, before) == 0
    assert refs_changed(before, after) == 3  # moved, created, deleted
    assert refs_changed({}, after) == 3
    one = fetched_id(repo="Acme/Web", before=before, after=after)
    assert one == fetched_id(repo="acme/web", before=dict(before), after=dict(after))
    assert one != fetched_id(repo="acme/web", before=after, after=before)
