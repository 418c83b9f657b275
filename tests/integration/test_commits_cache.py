"""The gateway's commits cache end to end: a real gateway and signature-verifier fetching a
``file://`` source. A page read twice is served hot, and every kind of change drops it: a
fetch that moved a branch other than the default (``mirror.fetched``), a verification
stamped (``commit.verified``), a mirror removed (``mirror.removed``), and the gateway's own
key uploads and mirror writes (at once, before they answer). With the cache off, reads are
current too."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pygit2
from cryptography.hazmat.primitives.asymmetric import ed25519

from contracts.events.signatures import MirrorFetched
from contracts.rpc import signatures as rpc
from services.gateway.commits_cache import COMMITS_FEED_KEY, HIT, CommitsFeed
from shared.service import Runtime
from tests.conftest import StartService, wait_until
from tests.integration.git_mirrors_support import fetched, mirror_stack, new_repo_project
from tests.integration.release_candidates_support import events_of
from tests.integration.signatures_support import (
    RepoBuilder,
    create_user,
    rpc_call,
    ssh_public_line,
    ssh_sign,
)
from tests.integration.test_gateway_support import Api

REPO = "Acme/Cached"
EMAIL = "ada@example.org"


def _source() -> tuple[RepoBuilder, ed25519.Ed25519PrivateKey]:
    """main: an unsigned commit, then one SSH-signed by ``EMAIL``; feature: at the first."""
    builder = RepoBuilder(Path(tempfile.mkdtemp(prefix="gatehouse-cache-")) / "src.git")
    private = ed25519.Ed25519PrivateKey.generate()
    first = builder.commit(EMAIL)
    builder.repo.references.create("refs/heads/feature", pygit2.Oid(hex=first))
    builder.commit(EMAIL, sign=lambda payload: ssh_sign(private, payload))
    builder.repo.set_head("refs/heads/main")
    return builder, private


def _commit_on_feature(builder: RepoBuilder) -> str:
    repo = builder.repo
    parent = repo.references["refs/heads/feature"].target
    person = pygit2.Signature("Test Signer", EMAIL, 1_800_000_000, 0)
    tree = repo[parent].peel(pygit2.Tree).id
    return str(repo.create_commit("refs/heads/feature", person, person, "more\n", tree, [parent]))


def _gateway_cache(api: Api) -> Any:
    feed = api.runtime.state[COMMITS_FEED_KEY]
    assert isinstance(feed, CommitsFeed)
    return feed.cache


async def _configured(api: Api, builder: RepoBuilder) -> None:
    await new_repo_project(api, REPO.lower())
    url = f"file://{builder.path}"
    reply = await api.call("PUT", f"/api/v1/repos/{REPO}/git", json={"clone_url": url})
    assert reply.status == 201, reply.body
    await fetched(api, REPO)


async def _shas(api: Api, query: str = "") -> list[str]:
    reply = await api.call("GET", f"/api/v1/repos/{REPO}/commits?{query}")
    assert reply.status == 200, reply.body
    return [item["sha"] for item in reply.body]


async def _reason(api: Api, sha: str) -> str:
    reply = await api.call("GET", f"/api/v1/repos/{REPO}/commits")
    assert reply.status == 200, reply.body
    return str(next(i for i in reply.body if i["sha"] == sha)["verification"]["reason"])


async def _sync_at_the_owner(verifier: Runtime, api: Api) -> None:
    """A fetch asked of the owner directly: the gateway learns of it by events only."""
    before = (await api.call("GET", f"/api/v1/repos/{REPO}/git")).body["status"]["finished_at"]
    await rpc_call(verifier, rpc.MIRROR_SYNC, rpc.MirrorRequest(repo=REPO), rpc.MirrorSyncReply)
    await fetched(api, REPO, after=before)


async def test_pages_are_served_hot_and_each_event_drops_them(
    start_service: StartService,
) -> None:
    builder, private = _source()
    signed = str(builder.head)
    async with mirror_stack(start_service) as (api, verifier):
        await _configured(api, builder)
        cache = _gateway_cache(api)

        # Served hot: once the fetch's own events (verifications stamped) have passed, a
        # page read again is a hit and answers the same.
        feature = await _shas(api, "sha=feature")
        assert cache.live, "the commits feed runs"
        await wait_until(lambda: _served_hot(api, "sha=feature"), timeout=10)
        assert await _shas(api, "sha=feature") == feature and len(cache) >= 1

        # A new commit on a branch other than the default, fetched: mirror.fetched.
        newer = _commit_on_feature(builder)
        assert await _shas(api, "sha=feature") == feature  # still hot
        await _sync_at_the_owner(verifier, api)

        async def shows_newer() -> bool:
            return (await _shas(api, "sha=feature"))[0] == newer

        await wait_until(shows_newer, timeout=10)
        moved = [e.payload for e in await events_of(verifier, "mirror.fetched")]
        assert all(isinstance(p, MirrorFetched) for p in moved)
        assert moved[-1].refs_changed == 1 and moved[-1].repo == REPO.lower()
        # A fetch that moved nothing announces nothing.
        await _sync_at_the_owner(verifier, api)
        assert len(await events_of(verifier, "mirror.fetched")) == len(moved)

        # A verification stamped: the key uploaded at the owner, its backfill re-verifies.
        await wait_until(lambda: _is(api, signed, "unknown_key"), timeout=10)
        assert await _reason(api, signed) == "unknown_key"  # hot now
        await create_user(verifier, "ada", (EMAIL, True))
        body = rpc.SshKeyBody(key=ssh_public_line(private))
        request = rpc.SshKeyAddRequest(login="ada", key=body)
        await rpc_call(verifier, rpc.SSH_KEY_ADD, request, rpc.SshSigningKey)
        await wait_until(lambda: _is(api, signed, "valid"), timeout=10)

        # The mirror removed at the owner: mirror.removed, the next reads list nothing.
        assert await _shas(api)
        await rpc_call(verifier, rpc.MIRROR_DELETE, rpc.MirrorRequest(repo=REPO), rpc.MirrorView)

        async def lists_nothing() -> bool:
            return await _shas(api) == []

        await wait_until(lists_nothing, timeout=10)


async def _served_hot(api: Api, query: str) -> bool:
    await _shas(api, query)
    hits = HIT._value.get()
    await _shas(api, query)
    return bool(HIT._value.get() == hits + 1)


async def _is(api: Api, sha: str, reason: str) -> bool:
    return await _reason(api, sha) == reason


async def test_the_gateways_own_writes_drop_the_cache_before_answering(
    start_service: StartService,
) -> None:
    builder, private = _source()
    signed = str(builder.head)
    async with mirror_stack(start_service) as (api, _verifier):
        await _configured(api, builder)
        cache = _gateway_cache(api)
        await wait_until(lambda: _is(api, signed, "unknown_key"), timeout=10)
        detail = await api.call("GET", f"/api/v1/repos/{REPO}/commits/{signed}")
        assert detail.status == 200 and len(cache) >= 2

        # A key upload (any repo's verifications may change): everything dropped at once.
        reply = await api.call("POST", "/api/v1/users", json={"login": "ada", "name": "Ada"})
        assert reply.status == 201, reply.body
        key = {"key": ssh_public_line(private)}
        reply = await api.call("POST", "/api/v1/users/ada/ssh_signing_keys", json=key)
        assert reply.status == 201, reply.body
        assert len(cache) == 0
        await _shas(api)
        reply = await api.call("DELETE", f"/api/v1/users/ada/ssh_signing_keys/{reply.body['id']}")
        assert reply.status == 204 and len(cache) == 0

        # The mirror deleted through the gateway: the very next read lists nothing.
        assert await _shas(api)
        reply = await api.call("DELETE", f"/api/v1/repos/{REPO}/git")
        assert reply.status == 204
        assert await _shas(api) == []
        reply = await api.call("GET", f"/api/v1/repos/{REPO}/commits/{signed}")
        assert reply.status == 404 and reply.code == "commit_not_found"


async def test_with_the_cache_off_reads_are_current(start_service: StartService) -> None:
    builder, _ = _source()
    async with mirror_stack(start_service, gateway={"commits_cache_size": 0}) as (api, verifier):
        await _configured(api, builder)
        cache = _gateway_cache(api)
        hits = HIT._value.get()
        feature = await _shas(api, "sha=feature")
        assert await _shas(api, "sha=feature") == feature
        newer = _commit_on_feature(builder)
        await _sync_at_the_owner(verifier, api)
        assert (await _shas(api, "sha=feature"))[0] == newer
        assert len(cache) == 0 and HIT._value.get() == hits
