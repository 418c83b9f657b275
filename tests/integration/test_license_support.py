"""Helpers for the license and report tests (no tests here): policies and waivers over
HTTP, waiting for a snapshot's licenses to be evaluated again, reading events."""

from __future__ import annotations

import datetime as dt
from typing import Any

from contracts.envelope import decode_event
from shared.jobs import projection_caught_up
from shared.service import Runtime
from tests.conftest import wait_until
from tests.integration.test_gateway_support import Reply
from tests.integration.test_scan_support import ScanApi, subject_counts


async def put_policy(
    s: ScanApi, body: dict[str, Any], *, project: str | None = None, **kwargs: Any
) -> Reply:
    path = f"/api/v1/projects/{project}/license-policy" if project else "/api/v1/license-policy"
    return await s.call("PUT", path, json=body, **kwargs)


async def grant_waiver(
    s: ScanApi,
    project: str,
    license: str,
    *,
    purl: str | None = None,
    expires_in: dt.timedelta = dt.timedelta(days=30),
    reason: str = "legal approved",
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "license": license,
        "reason": reason,
        "expires_at": (dt.datetime.now(dt.UTC) + expires_in).isoformat(),
    }
    if purl is not None:
        body["purl"] = purl
    reply = await s.call("POST", f"/api/v1/projects/{project}/license-policy/waivers", json=body)
    assert reply.status == 201, reply.body
    return dict(reply.body)


async def gate(s: ScanApi, project: str, query: str = "") -> dict[str, Any]:
    reply = await s.call("GET", f"/api/v1/projects/{project}/policy-gate?{query}")
    assert reply.status == 200, reply.body
    return dict(reply.body)


async def categories(s: ScanApi, project: str, query: str = "") -> dict[str, str]:
    reply = await s.call("GET", f"/api/v1/projects/{project}/components?limit=500&{query}")
    assert reply.status == 200, reply.body
    return {c["name"]: c["license_category"] for c in reply.body["items"]}


async def relicensed(s: ScanApi, count: int, *, timeout: float = 20.0) -> None:  # noqa: ASYNC109
    """Wait until ``count`` scan.relicensed events are on the stream and applied by both
    projections (the scans one sets the categories, the licensing one the versions)."""

    async def done() -> bool:
        found = await subject_counts(s.scanner, "scan.relicensed")
        return found.get("scan.relicensed", 0) >= count

    await wait_until(done, timeout=timeout)
    await caught_up(s, timeout=timeout)


async def settled(s: ScanApi, *, timeout: float = 20.0) -> None:  # noqa: ASYNC109
    """Every license job is done and both projections have applied the whole stream."""

    async def no_open_jobs() -> bool:
        open_jobs = await s.scanner.pool.fetchval(
            "SELECT count(*) FROM scanner.license_jobs WHERE status <> 'done'"
        )
        return int(open_jobs) == 0

    await wait_until(no_open_jobs, timeout=timeout)
    await caught_up(s, timeout=timeout)


async def caught_up(s: ScanApi, *, timeout: float = 20.0) -> None:  # noqa: ASYNC109
    """The scans and licensing projections have applied every event of theirs on the stream."""

    async def both() -> bool:
        runners = s.scanner.runners
        return await projection_caught_up(
            s.scanner.bus, runners["scans"]
        ) and await projection_caught_up(s.scanner.bus, runners["licensing"])

    await wait_until(both, timeout=timeout)


async def events(runtime: Runtime, subject: str) -> list[Any]:
    """Every event of ``subject`` on the stream, decoded, oldest first."""
    js = runtime.bus.js
    sub = await js.subscribe(subject, ordered_consumer=True, stream=runtime.bus.stream)
    total = (await subject_counts(runtime, subject)).get(subject, 0)
    found = []
    try:
        while len(found) < total:
            msg = await sub.next_msg(timeout=5)
            found.append(decode_event(msg.data, sequence=int(msg.metadata.sequence.stream)))
    finally:
        await sub.unsubscribe()
    return [event.payload for event in found]
