"""Helpers for the release gate tests (no tests here): the scanner + release-decision +
gateway stack, advisories that make a known-vulnerable package, reading decisions."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from contracts.envelope import Event, decode_event
from shared.service import Runtime
from tests.conftest import StartService, wait_until
from tests.integration.test_gateway_support import Reply
from tests.integration.test_scan_support import (
    Pkg,
    ScanApi,
    cyclonedx_json,
    scan_api,
    subject_counts,
)
from tests.integration.test_vulndb_support import CVSS_CRITICAL, ZIP, osv, zip_of

# django 2.2.0 is CRITICAL (CVE-2020-0001); sqlparse 0.2.4 is MODERATE (CVE-2021-0002).
VULNERABLE = (Pkg("django", "2.2.0"), Pkg("sqlparse", "0.2.4", license="BSD-3-Clause"))
CLEAN = (Pkg("django", "3.2.0"), Pkg("sqlparse", "0.5.0", license="BSD-3-Clause"))


def advisories() -> dict[str, Any]:
    return {
        "GHSA-dj01.json": osv(
            "GHSA-dj01",
            name="django",
            aliases=("CVE-2020-0001",),
            events=[{"introduced": "0"}, {"fixed": "2.2.10"}],
            severity=[{"type": "CVSS_V3", "score": CVSS_CRITICAL}],
        ),
        "GHSA-sq01.json": osv(
            "GHSA-sq01",
            name="sqlparse",
            aliases=("CVE-2021-0002",),
            events=[{"introduced": "0"}, {"fixed": "0.4.2"}],
            database_specific={"severity": "MODERATE"},
        ),
    }


def sha() -> str:
    return uuid.uuid4().hex + uuid.uuid4().hex[:8]


@dataclass
class Gate:
    s: ScanApi
    decisions: Runtime

    async def call(self, method: str, path: str, **kwargs: Any) -> Reply:
        return await self.s.call(method, path, **kwargs)

    async def project(self, *repos: str, **fields: Any) -> dict[str, Any]:
        return await self.s.api.new_project(repos=list(repos), **fields)

    async def scan(
        self, slug: str, repo: str, commit: str, pkgs: Any = VULNERABLE
    ) -> dict[str, Any]:
        return await self.s.scan(slug, cyclonedx_json(pkgs), query=f"repo={repo}&commit={commit}")

    async def decision(self, repo: str, commit: str, *, query: str = "", **kw: Any) -> Reply:
        return await self.call(
            "GET", f"/api/v1/releases/decision?repo={repo}&commit={commit}{query}", **kw
        )

    async def decided(
        self,
        repo: str,
        commit: str,
        *,
        decision: str,
        revision: int | None = None,
        pending_ok: bool = False,
    ) -> dict[str, Any]:
        """Wait until the decision of (repo, commit) is ``decision``; returns it. A NO_SHIP
        whose scan is still pending (``evidence_pending``) is not the answer yet unless
        ``pending_ok``: release-decision may apply the queued scan before its outcome."""
        seen: dict[str, Any] = {}

        async def reached() -> bool:
            reply = await self.decision(repo, commit)
            if reply.code == "head_unknown":
                return False  # the commit.pushed is not applied yet
            assert reply.status == 200, reply.body
            seen.clear()
            seen.update(reply.body)
            pending = any(b["code"] == "evidence_pending" for b in reply.body["blockers"])
            return (
                reply.body["decision"] == decision
                and (revision is None or reply.body["revision"] >= revision)
                and (pending_ok or not pending)
            )

        await wait_until(reached, timeout=20)
        return seen


@asynccontextmanager
async def gate_stack(start_service: StartService, **overrides: Any) -> AsyncIterator[Gate]:
    decisions = await start_service("release-decision", **overrides)
    async with scan_api(start_service, **overrides) as s:
        reply = await s.call(
            "POST", "/api/v1/vulndb/import", data=zip_of(advisories()), headers=ZIP
        )
        assert reply.status == 200, reply.body
        yield Gate(s=s, decisions=decisions)


async def events_of(runtime: Runtime, subject: str) -> list[Event]:
    """Every event of ``subject`` on the stream, decoded, oldest first."""
    js = runtime.bus.js
    total = (await subject_counts(runtime, subject)).get(subject, 0)
    sub = await js.subscribe(subject, ordered_consumer=True, stream=runtime.bus.stream)
    found: list[Event] = []
    try:
        while len(found) < total:
            msg = await sub.next_msg(timeout=5)
            found.append(decode_event(msg.data, sequence=int(msg.metadata.sequence.stream)))
    finally:
        await sub.unsubscribe()
    return found


async def decided_count(runtime: Runtime) -> int:
    return (await subject_counts(runtime, "release.decided")).get("release.decided", 0)
