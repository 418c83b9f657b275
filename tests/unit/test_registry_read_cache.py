"""The gateway's registry read cache (pure): only allowed downloads are kept, never an answer
older than an event already applied or than the feed's start, an event drops what it names
(a block: everything), a write through the gateway refuses the answers in flight; and the
small-blob memo's bounds."""

from __future__ import annotations

import datetime as dt
from typing import Any

from contracts.envelope import EventPayload, decode_event, encode_envelope, make_envelope
from contracts.events.registry import (
    ArtifactPromoted,
    ArtifactUploaded,
    BlockCreated,
    BlockHit,
    RepositoryUpdated,
)
from contracts.rpc import registry as rpc
from services.gateway.packages.http.blob_memo import BlobMemo
from services.gateway.packages.read_cache import (
    REGISTRY_FEED_KEY,
    RegistryFeed,
    RegistryReadCache,
    fetch_key,
    index_key,
    registry_changed,
)

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
REF = rpc.RepositoryRef(project_id="p1", slug="pypi")
OTHER = rpc.RepositoryRef(project_id="p1", slug="other")
DIGEST = "sha256:" + "a" * 64
REPO_A, REPO_B, REPO_X = ("repo_" + c * 32 for c in "abc")
ART_1, ART_2, ART_3, ART_9 = ("art_" + c * 32 for c in "1239")
BLOCK_1 = "00000000-0000-4000-8000-000000000001"
BLOCK_2 = "00000000-0000-4000-8000-000000000002"


def event(payload: EventPayload, sequence: int) -> Any:
    envelope = make_envelope(payload, source="t", aggregate="a", actor="t", occurred_at=T0)
    return decode_event(encode_envelope(envelope), sequence=sequence)


def repository(repo_id: str) -> rpc.Repository:
    return rpc.Repository(
        id=repo_id,
        project_id="p1",
        slug="pypi",
        format="pypi",
        visibility="public",
        quarantine_new=False,
        description="",
        quota_bytes=None,
        quota_artifacts=None,
        used_bytes=0,
        artifact_count=1,
        created_at=T0,
        updated_at=T0,
        revision=1,
    )


def fetched(
    repo_id: str = REPO_A, *, applied: int = 10, verdict: str = "allowed"
) -> rpc.ArtifactFetchReply:
    artifact = rpc.Artifact(
        id=ART_1,
        repo_id=repo_id,
        project_id="p1",
        format="pypi",
        path="demo-1.0-py3-none-any.whl",
        kind="wheel",
        name="demo",
        version="1.0",
        purl="pkg:pypi/demo@1.0",
        digest=DIGEST,
        size=10,
        metadata_digest=None,
        requires_python=None,
        provenance=None,
        uploaded_by="apikey:x",
        uploaded_at=T0,
        scan_status="passed",
        quarantined=verdict == "quarantined",
    )
    return rpc.ArtifactFetchReply(
        verdict=verdict,  # type: ignore[arg-type]
        artifact=artifact,
        repository=repository(repo_id),
        applied_through=applied,
    )


def indexed(repo_id: str = REPO_A, *, applied: int = 10) -> rpc.ArtifactIndexReply:
    return rpc.ArtifactIndexReply(
        repository=repository(repo_id), names=["demo"], revision=5, applied_through=applied
    )


def live(size: int = 10, **kw: Any) -> RegistryReadCache:
    cache = RegistryReadCache(size=size, **kw)
    cache.live = True
    cache.rearm(0)
    return cache


def uploaded(repo_id: str, sequence: int) -> Any:
    payload = ArtifactUploaded(
        id=ART_2,
        repo_id=repo_id,
        project_id="p1",
        format="pypi",
        path="demo-2.0-py3-none-any.whl",
        kind="wheel",
        digest=DIGEST,
        size=10,
        uploaded_by="apikey:x",
    )
    return event(payload, sequence)


def test_only_allowed_downloads_and_indexes_are_kept() -> None:
    cache = live()
    key = fetch_key(REF, "demo-1.0-py3-none-any.whl")
    for verdict in ("blocked", "quarantined"):
        assert not cache.offer(key, fetched(verdict=verdict), stamp=cache.stamp())
        assert cache.get(key) is None
    assert cache.offer(key, fetched(), stamp=cache.stamp())
    assert cache.get(key) == fetched()
    assert cache.offer(index_key(REF, None), indexed(), stamp=cache.stamp())
    assert cache.get(index_key(REF, "demo")) is None  # another key
    assert cache.get(index_key(REF, None)) == indexed()


def test_an_answer_older_than_an_applied_event_is_not_kept() -> None:
    cache = live()
    cache.apply(uploaded(REPO_A, 12))  # the feed is ahead of the scanner's read model
    key = fetch_key(REF, "f")
    assert not cache.offer(key, fetched(applied=11), stamp=cache.stamp())
    assert cache.offer(key, fetched(applied=12), stamp=cache.stamp())
    # Another repository's event says nothing of this one.
    other = fetch_key(OTHER, "f")
    assert cache.offer(other, fetched(REPO_B, applied=3), stamp=cache.stamp())
    assert not cache.offer(other, fetched(REPO_B, applied=0), stamp=cache.stamp())


def test_nothing_older_than_the_feed_is_kept_nor_anything_before_it_is_armed() -> None:
    cache = RegistryReadCache(size=10)
    cache.live = True
    key = fetch_key(REF, "f")
    assert not cache.offer(key, fetched(applied=10**9), stamp=cache.stamp())  # not armed
    cache.rearm(40)  # the stream's last sequence when the consumers started
    assert not cache.offer(key, fetched(applied=39), stamp=cache.stamp())
    assert cache.offer(key, fetched(applied=40), stamp=cache.stamp())
    cache.clear()  # a reconnect: events may have been missed
    assert cache.get(key) is None
    assert not cache.offer(key, fetched(applied=10**9), stamp=cache.stamp())


def test_an_event_drops_the_repositories_it_names() -> None:
    cache = live()
    a, b = fetch_key(REF, "f"), fetch_key(OTHER, "f")
    cache.offer(a, fetched(REPO_A), stamp=cache.stamp())
    cache.offer(b, fetched(REPO_B), stamp=cache.stamp())
    cache.apply(uploaded(REPO_A, 11))
    assert cache.get(a) is None and cache.get(b) is not None
    cache.apply(event(RepositoryUpdated(id=REPO_B, visibility="private"), 12))
    assert cache.get(b) is None
    cache.offer(a, fetched(REPO_A, applied=20), stamp=cache.stamp())
    cache.offer(b, fetched(REPO_B, applied=20), stamp=cache.stamp())
    promoted = ArtifactPromoted(
        id=ART_3, source_artifact_id=ART_1, from_repo_id=REPO_X, to_repo_id=REPO_A, digest=DIGEST
    )
    cache.apply(event(promoted, 21))
    assert cache.get(a) is None and cache.get(b) is not None


def test_a_block_drops_everything_and_a_hit_nothing() -> None:
    cache = live()
    a, b = fetch_key(REF, "f"), fetch_key(OTHER, "f")
    cache.offer(a, fetched(REPO_A), stamp=cache.stamp())
    cache.offer(b, fetched(REPO_B), stamp=cache.stamp())
    hit = BlockHit(
        block_id=BLOCK_1, artifact_id=ART_9, repo_id=REPO_A, digest=DIGEST, principal="anonymous"
    )
    cache.apply(event(hit, 11))
    assert cache.get(a) is not None and cache.get(b) is not None
    cache.apply(event(BlockCreated(id=BLOCK_2, digest=DIGEST, reason="evil"), 12))
    assert len(cache) == 0
    assert not cache.offer(b, fetched(REPO_B, applied=11), stamp=cache.stamp())
    cache.changed_everything(15)  # an event this gateway could not decode
    assert not cache.offer(b, fetched(REPO_B, applied=14), stamp=cache.stamp())


def test_a_write_through_the_gateway_refuses_answers_in_flight() -> None:
    cache = live()
    key = fetch_key(REF, "f")
    stamp = cache.stamp()  # a miss asks the scanner …
    state: dict[str, Any] = {REGISTRY_FEED_KEY: RegistryFeed(None, cache)}  # type: ignore[arg-type]
    registry_changed(state, rpc.SERVICE, rpc.ARTIFACT_FETCH)  # reads change nothing
    registry_changed(state, "release-decision", "decision_get")
    assert cache.stamp() == stamp
    registry_changed(state, rpc.SERVICE, rpc.BLOCK_CREATE)  # … while a block is made here
    assert not cache.offer(key, fetched(applied=10**6), stamp=stamp)
    registry_changed(state, rpc.SERVICE, "some_future_operation")  # unknown: a write
    assert cache.stamp() != stamp


def test_age_and_size_bound_the_cache() -> None:
    now = [0.0]
    cache = live(size=2, max_age=60.0, clock=lambda: now[0])
    keys = [fetch_key(REF, f"f{n}") for n in range(3)]
    for key in keys:
        cache.offer(key, fetched(), stamp=cache.stamp())
    assert len(cache) == 2 and cache.get(keys[0]) is None
    now[0] = 61.0
    assert cache.get(keys[2]) is None


def test_blob_memo_keeps_small_blobs_within_its_bytes() -> None:
    memo = BlobMemo(max_bytes=100, max_entry_bytes=40)
    memo.put("a", b"x" * 40)
    memo.put("big", b"x" * 41)  # over the entry bound: not kept
    assert memo.get("big") is None and memo.get("a") == b"x" * 40
    memo.put("b", b"y" * 40)
    memo.put("c", b"z" * 40)  # 120 > 100: the least recently used goes
    assert memo.get("a") is None and memo.held_bytes == 80
    memo.discard("b")
    assert memo.get("b") is None and memo.held_bytes == 40
