"""``Idempotency-Key`` on POST: the first response is stored for 24 h per principal and key,
and a retry with the same key and the same request gets it again (``Idempotent-Replayed``).

Only answers worth repeating are stored (2xx-4xx from the handler). A 5xx, a crash or a
cancelled request forgets the answer, and the client's retry runs the request again — as
the same *command*: the request's ``command_id`` (from principal, key and fingerprint) goes
with every write it makes (``RequestContext.command_id``, ``CallContext.command_id``), and
the owner of the write answers a re-run with what the first attempt did, whatever crashed
in between (``shared.commands.run_once``): no second event, no ``slug_taken`` for the
client's own project, no second scan. So an attempt whose gateway process died is taken over
by the next retry at once. Secrets in a response (``Route.redact_on_replay``) are never
stored: the replay answers them as null, and so does a re-run that finds the first attempt's
write (the secret was made, and lost, by that attempt).
"""

from __future__ import annotations

import asyncio
import dataclasses

import asyncpg
import msgspec
from aiohttp import web

from services.gateway.adapters import idempotency_store as store
from services.gateway.deps import GatewayDeps
from services.gateway.domain.errors import IdempotencyKeyInProgress, IdempotencyKeyReused
from services.gateway.domain.idempotency import REPLAYED_HEADERS, Outcome, decide, fingerprint
from services.gateway.routing import RequestContext, Route, Upload
from shared import faults
from shared.commands import command_id_for
from shared.errors import GatehouseError
from shared.http import problem_response
from shared.logging import get_logger

log = get_logger(__name__)

REPLAYED_HEADER = "Idempotent-Replayed"


def request_fingerprint(ctx: RequestContext) -> str:
    # The decoded body re-encoded: key order and whitespace do not make a different request.
    # An upload is named by its digest.
    if isinstance(ctx.body, Upload):
        body = f"{ctx.body.media_type} {ctx.body.digest}".encode()
    else:
        body = msgspec.json.encode(ctx.body) if ctx.body is not None else b""
    request = ctx.request
    return fingerprint(
        method=request.method, path=request.path, query=request.query_string, body=body
    )


async def run_idempotent(
    ctx: RequestContext, route: Route, key: str, deps: GatewayDeps
) -> web.StreamResponse:
    assert ctx.principal is not None
    principal = ctx.principal.actor
    pool = deps.pool
    wanted = request_fingerprint(ctx)
    ctx.command_id = command_id_for(principal=principal, key=key, fingerprint=wanted)
    instance = await deps.liveness.ensure()
    claimed, attempt, stored, now = await store.claim(
        pool, principal=principal, key=key, fingerprint=wanted, instance=instance
    )
    if (
        attempt is not None
        and attempt.running
        and attempt.held_by == instance
        and (principal, key) not in _RUNNING_HERE
    ):
        # This process holds the attempt but no request of its runs it: the request ended
        # without forgetting it (the database went away meanwhile, maybe while the claim's
        # answer was on its way). Abandoned: take it over now, not when it has aged.
        attempt = dataclasses.replace(attempt, holder_alive=False)
    if not claimed:
        outcome = decide(
            attempt, fingerprint=wanted, now=now, stale_after=deps.idempotency_stale_after
        )
        if outcome is Outcome.REUSED:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was already used for a different request"
            )
        if outcome is Outcome.IN_PROGRESS:
            raise IdempotencyKeyInProgress("retry once the first request has been answered")
        if outcome is Outcome.REPLAY:
            assert stored is not None
            return _replay(stored)
        assert attempt is not None  # START after expiry, or TAKE_OVER of an abandoned one
        if not await store.restart(
            pool,
            principal=principal,
            key=key,
            fingerprint=wanted,
            previous=attempt,
            instance=instance,
        ):
            raise IdempotencyKeyInProgress("another request took this Idempotency-Key over")
    return await _run_and_store(ctx, route, key, principal, deps)


async def _run_and_store(
    ctx: RequestContext, route: Route, key: str, principal: str, deps: GatewayDeps
) -> web.StreamResponse:
    pool = deps.pool
    _RUNNING_HERE.add((principal, key))
    try:
        return await _run_and_store_here(ctx, route, key, principal, pool)
    finally:
        _RUNNING_HERE.discard((principal, key))


async def _run_and_store_here(
    ctx: RequestContext, route: Route, key: str, principal: str, pool: asyncpg.Pool
) -> web.StreamResponse:
    try:
        try:
            response = await route.handler(ctx)
        except GatehouseError as exc:
            if exc.status >= 500:
                raise
            response = problem_response(exc, request_id=ctx.request_id, instance=ctx.request.path)
    except BaseException:
        await asyncio.shield(_forget(pool, principal=principal, key=key))
        raise
    if response.status >= 500 or not isinstance(response, web.Response):
        await _forget(pool, principal=principal, key=key)
        return response
    headers = {
        name: response.headers[name] for name in REPLAYED_HEADERS if name in response.headers
    }
    body = response.body if isinstance(response.body, bytes) else b""
    if route.redact_on_replay and body:
        body = _redacted(body, route.redact_on_replay)
    faults.point("idempotency.before_store")
    try:
        await store.finish(
            pool,
            principal=principal,
            key=key,
            response=store.StoredResponse(response.status, headers, body),
        )
    except Exception:
        # Unstored (the database went away after the command ran): forget the attempt once
        # the database is back, so that the client's retry re-runs the command, which answers
        # from the owner's record of it, instead of meeting 409 in_progress.
        await _forget(pool, principal=principal, key=key)
        raise
    return response


# The (principal, key) attempts this process is running now.
_RUNNING_HERE: set[tuple[str, str]] = set()
# Attempts whose release waits for the database; referenced so that they are not collected.
_PENDING_RELEASES: set[asyncio.Task[None]] = set()
RELEASE_RETRY_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0)


async def _forget(pool: asyncpg.Pool, *, principal: str, key: str) -> None:
    """Forget an attempt that has no answer worth repeating. When the database is what failed
    (an outage: the release cannot run now either), keep trying in the background: otherwise
    every retry meets 409 in_progress until the attempt counts as abandoned."""
    try:
        await store.release(pool, principal=principal, key=key)
    except Exception as exc:
        log.warning("idempotency_release_deferred", error=f"{type(exc).__name__}: {exc}")
        task = asyncio.create_task(_release_when_back(pool, principal=principal, key=key))
        _PENDING_RELEASES.add(task)
        task.add_done_callback(_PENDING_RELEASES.discard)


async def _release_when_back(pool: asyncpg.Pool, *, principal: str, key: str) -> None:
    for delay in RELEASE_RETRY_SECONDS:
        await asyncio.sleep(delay)
        try:
            await store.release(pool, principal=principal, key=key)
            return
        except Exception as exc:
            log.info("idempotency_release_retry", error=f"{type(exc).__name__}: {exc}")


def _redacted(body: bytes, fields: tuple[str, ...]) -> bytes:
    document = msgspec.json.decode(body)
    if isinstance(document, dict):
        document.update({name: None for name in fields if name in document})
    return msgspec.json.encode(document)


def _replay(stored: store.StoredResponse) -> web.Response:
    return web.Response(
        status=stored.status,
        body=stored.body or None,
        headers={**stored.headers, REPLAYED_HEADER: "true"},
    )
