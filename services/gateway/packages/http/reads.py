"""The two registry reads of every package download — the simple index of a package and "may
this file be downloaded" — through the gateway's hot copy
(``services.gateway.packages.read_cache``), asking the scanner on a miss."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from contracts.rpc import registry as rpc
from services.gateway.deps import GatewayDeps
from services.gateway.packages.http.access import anonymous_safe, ask_scanner
from services.gateway.packages.read_cache import (
    READS,
    Answer,
    Key,
    fetch_key,
    index_key,
    registry_feed,
)
from services.gateway.routing import RequestContext


async def fetch_artifact(
    ctx: RequestContext, deps: GatewayDeps, ref: rpc.RepositoryRef, path: str
) -> rpc.ArtifactFetchReply:
    """The scanner's verdict on downloading ``path`` of ``ref`` (an allowed one may come
    from the hot copy)."""
    request = rpc.ArtifactFetchRequest(repo=ref, path=path)
    answer = await _read_through(
        ctx,
        deps,
        ref,
        fetch_key(ref, path),
        lambda: ask_scanner(ctx, deps, rpc.ARTIFACT_FETCH, request, rpc.ArtifactFetchReply),
    )
    assert isinstance(answer, rpc.ArtifactFetchReply)
    return answer


async def package_index(
    ctx: RequestContext, deps: GatewayDeps, ref: rpc.RepositoryRef, name: str | None
) -> rpc.ArtifactIndexReply:
    """The package names of ``ref`` (``name`` None), or the files of package ``name``."""
    request = rpc.ArtifactIndexRequest(repo=ref, name=name)
    answer = await _read_through(
        ctx,
        deps,
        ref,
        index_key(ref, name),
        lambda: ask_scanner(ctx, deps, rpc.ARTIFACT_INDEX, request, rpc.ArtifactIndexReply),
    )
    assert isinstance(answer, rpc.ArtifactIndexReply)
    return answer


async def _read_through(
    ctx: RequestContext,
    deps: GatewayDeps,
    ref: rpc.RepositoryRef,
    key: Key,
    ask: Callable[[], Awaitable[Answer]],
) -> Answer:
    kind = key[0]
    feed = registry_feed(deps.runtime.state)
    if feed is None or not feed.cache.enabled:
        READS.labels(kind, "bypass").inc()
        return await anonymous_safe(ctx, deps, ref, ask)
    feed.check_connection()
    cache = feed.cache
    found = cache.get(key)
    if found is not None:
        READS.labels(kind, "hit").inc()
        return found
    READS.labels(kind, "miss").inc()
    stamp = cache.stamp()
    answer = await anonymous_safe(ctx, deps, ref, ask)
    cache.offer(key, answer, stamp=stamp)
    return answer
