"""Scan on upload, through the real scanner and gateway: a malicious-package advisory (OSV
``MAL-``, the OpenSSF malicious-packages format) blocks an upload automatically and keeps a
quarantined one held; a clean upload to a quarantined repository is downloadable within a
second; one block per (advisory, package) however many uploads, redeliveries, re-imports
and replays; a later import blocks what is already stored; an admin who lifts such a block
is not overruled; a replay from zero rebuilds identical tables."""

from __future__ import annotations

import asyncio
import glob
import time

from contracts.rpc import registry as rpc
from services.registry import definition
from services.scanner.registry.malware import advisory_block_id
from services.scanner.registry.projection import NAME
from services.scanner.registry.scanning import SCAN_JOB, scan_job_id
from services.scanner.registry.store import PROJECTION_TABLES
from services.scanner.registry.wiring import WORKER_KEY
from shared import jobs
from shared.jobs import projection_caught_up
from shared.service import Runtime
from shared.settings import Settings
from tests.conftest import StartService, shared_data, table_digest, wait_until
from tests.integration.registry_gate_support import (
    ALL_VERSIONS,
    blocks_of,
    import_osv,
    malicious,
    scanned,
)
from tests.integration.registry_meta_support import registry
from tests.integration.test_license_support import events
from tests.integration.test_scan_support import fetch

EVIL = "MAL-2024-4720"
TYPO = "MAL-2024-10238"
LATER = "MAL-2025-2925"
JOB_COLUMNS = "id, kind, status, enqueued_seq"


async def test_malicious_uploads_are_blocked_clean_ones_released(
    start_service: StartService, settings: Settings
) -> None:
    async with registry(start_service) as r:
        await r.api.new_project("acme")
        await import_osv(
            r,
            {
                f"{EVIL}.json": malicious(EVIL, "evil-pkg", versions=["1.0", "1.1"]),
                f"{TYPO}.json": malicious(TYPO, "reqeusts", ranges=ALL_VERSIONS),
            },
        )
        held = await r.new_repo("acme", "held", quarantine_new=True)
        plain = await r.new_repo("acme", "plain")

        # ---- a malicious upload: blocked automatically, held in quarantine -------------
        evil = await r.register(
            held["id"], "evil_pkg-1.0-py3-none-any.whl", name="Evil_Pkg", version="1.0"
        )
        assert evil.quarantined
        seen = await scanned(r, evil.id)
        assert (seen["scan_status"], seen["quarantined"]) == ("blocked", True)
        assert seen["malicious"] == [EVIL] and seen["advisories"] == [EVIL]
        verdict = await r.fetch(held["id"], evil.path)
        block_id = advisory_block_id(EVIL, "pkg:pypi/evil-pkg")
        assert verdict.verdict == "blocked" and verdict.block is not None
        assert verdict.block.block_id == block_id
        assert EVIL in verdict.block.reason and "osv.dev" in verdict.block.customer_message
        (block,) = [b for b in await blocks_of(r) if b["source"] == "malicious_advisory"]
        assert (block["id"], block["advisory_id"], block["purl"], block["versions"]) == (
            block_id,
            EVIL,
            "pkg:pypi/evil-pkg",
            "vers:pypi/1.0|1.1",
        )
        assert block["reason"].startswith(f"{EVIL}: Malicious code in evil-pkg (PyPI)")
        assert "ossf-package-analysis" in block["reason"] and block["created_by"] == "system"
        (scanned_event,) = await events(r.scanner, "artifact.scanned")
        assert (scanned_event.verdict, scanned_event.block_ids) == ("blocked", [block_id])
        (blocked_event,) = await events(r.scanner, "artifact.blocked")
        assert (blocked_event.id, blocked_event.block_id, blocked_event.advisory_id) == (
            evil.id,
            block_id,
            EVIL,
        )
        assert blocked_event.source == "malicious_advisory"

        # ---- the job run again (a crash before its artifact.scanned was applied) --------
        rerun = jobs.Job(
            id=scan_job_id(evil.id),
            kind=SCAN_JOB,
            payload={"artifact_id": evil.id},
            attempts=2,
            enqueued_seq=0,
        )
        pending = "UPDATE scanner.registry_artifacts SET scan_status = $2 WHERE id = $1"
        await fetch(r.scanner, pending, evil.id, "pending")
        await r.scanner.state[WORKER_KEY].handler(rerun)
        await fetch(r.scanner, pending, evil.id, "blocked")
        counts = await r.counts()
        once = ("block.created", "artifact.blocked", "artifact.scanned")
        assert [counts.get(subject) for subject in once] == [1, 1, 1]

        # ---- clean uploads to a quarantined repository: downloadable within a second ---
        async def upload_until_downloadable(path: str, version: str) -> tuple[float, str]:
            started = time.monotonic()
            artifact = await r.register(held["id"], path, name="evil-pkg", version=version)

            async def downloadable() -> bool:
                return (await r.fetch(held["id"], artifact.path)).verdict == "allowed"

            await wait_until(downloadable, timeout=10, interval=0.005)
            return time.monotonic() - started, artifact.id

        took, clean_id = await upload_until_downloadable("evil_pkg-2.0-py3-none-any.whl", "2.0")
        clean = await r.ask(rpc.ARTIFACT_GET, rpc.ArtifactGetRequest(id=clean_id), rpc.Artifact)
        timings = [took]
        for n in range(10):
            timings.append((await upload_until_downloadable(f"evil_pkg-3.{n}.tar.gz", f"3.{n}"))[0])
        # The target is p99 <= 1 s (make bench); the slowest of these is that here.
        assert max(timings) < 1.0, f"upload -> scanned -> downloadable: {sorted(timings)}"
        released = await scanned(r, clean.id)  # released first, artifact.scanned last
        assert (released["scan_status"], released["quarantined"]) == ("passed", False)
        releases = await events(r.scanner, "artifact.quarantine-released")
        assert len(releases) == 11 and {e.reason for e in releases} == {"scan passed"}
        assert releases[0].id == clean.id

        # ---- one block per (advisory, package), however many uploads -------------------
        copies = await asyncio.gather(
            *(
                r.register(plain["id"], path, name="evil-pkg", version="1.0", kind=kind)
                for path, kind in (
                    ("evil_pkg-1.0-py3-none-any.whl", "wheel"),
                    ("evil_pkg-1.0-py2-none-any.whl", "wheel"),
                    ("evil-pkg-1.0.tar.gz", "sdist"),
                )
            )
        )
        typo = await r.register(
            plain["id"], "reqeusts-2.31.0.tar.gz", name="reqeusts", version="2.31.0", kind="sdist"
        )
        await r.settled()
        for artifact in copies:
            assert (await r.fetch(plain["id"], artifact.path)).verdict == "blocked"
        typo_verdict = await r.fetch(plain["id"], typo.path)
        assert typo_verdict.block is not None
        assert typo_verdict.block.block_id == advisory_block_id(TYPO, "pkg:pypi/reqeusts")
        mal_blocks = [b for b in await blocks_of(r) if b["source"] == "malicious_advisory"]
        assert sorted((b["advisory_id"], b["versions"]) for b in mal_blocks) == [
            (TYPO, None),  # every version
            (EVIL, "vers:pypi/1.0|1.1"),
        ]
        states = await fetch(
            r.scanner,
            "SELECT id, blocked_by FROM scanner.registry_artifacts WHERE id = ANY($1::text[])",
            [a.id for a in (*copies, evil, clean)],
        )
        assert {s["id"]: s["blocked_by"] for s in states} == {
            **{a.id: block_id for a in (*copies, evil)},
            clean.id: None,
        }

        # ---- a later import blocks what is already stored ------------------------------
        later = await r.register(
            plain["id"], "later_tool-0.3-py3-none-any.whl", name="later-tool", version="0.3"
        )
        assert (await scanned(r, later.id))["scan_status"] == "passed"
        assert (await r.fetch(plain["id"], later.path)).verdict == "allowed"
        await import_osv(r, {f"{LATER}.json": malicious(LATER, "later-tool", ranges=ALL_VERSIONS)})

        async def later_blocked() -> bool:
            return (await r.fetch(plain["id"], later.path)).verdict == "blocked"

        await wait_until(later_blocked, timeout=20)
        await r.settled()
        sweep = [e for e in await events(r.scanner, "block.applied") if e.import_id]
        later_block = advisory_block_id(LATER, "pkg:pypi/later-tool")
        # The first import swept too: nothing of its packages was stored then.
        assert [e.created_blocks for e in sweep] == [[], [later_block]]
        later_events = [e for e in await events(r.scanner, "artifact.blocked") if e.id == later.id]
        assert [e.block_id for e in later_events] == [later_block]

        # ---- an admin lifts a block: not overruled by a re-import nor a new upload -----
        lifted = await r.http("DELETE", f"/api/admin/security/{block_id}")
        assert lifted.status == 204
        await r.settled()
        assert (await r.fetch(plain["id"], copies[0].path)).verdict == "allowed"
        unblocked = await events(r.scanner, "artifact.unblocked")
        assert sorted(e.id for e in unblocked) == sorted(a.id for a in (*copies, evil))
        await import_osv(
            r,
            {
                f"{EVIL}.json": malicious(
                    EVIL, "evil-pkg", versions=["1.0", "1.1"], modified="2025-01-01T00:00:00Z"
                )
            },
        )
        again = await r.register(
            plain["id"], "evil_pkg-1.1-py3-none-any.whl", name="evil-pkg", version="1.1"
        )
        assert (await scanned(r, again.id))["scan_status"] == "passed"
        await r.settled()
        assert block_id not in {b["id"] for b in await blocks_of(r)}
        assert len(await events(r.scanner, "block.created")) == 3  # EVIL, TYPO, LATER

        # ---- replay from sequence 0: identical tables, every job finished ---------------
        runner = r.scanner.runners[NAME]
        await wait_until(lambda: projection_caught_up(r.scanner.bus, runner))
        jobs_before = await fetch(
            r.scanner, f"SELECT {JOB_COLUMNS} FROM scanner.registry_jobs ORDER BY id"
        )
        assert {j["status"] for j in jobs_before} == {"done"}
        await r.scanner.stop()
    tables = [t for t in PROJECTION_TABLES if t != "registry_jobs"]
    live = await table_digest(settings.database_url, "scanner", tables)
    runtime = Runtime(definition("scanner"), settings.with_(service="scanner"))
    await runtime.start(serve=False)
    try:
        assert await runtime.runners[NAME].replay() > 0
        jobs_after = await runtime.pool.fetch(
            f"SELECT {JOB_COLUMNS} FROM scanner.registry_jobs ORDER BY id"
        )
    finally:
        await runtime.stop()
    assert await table_digest(settings.database_url, "scanner", tables) == live
    assert [dict(j) for j in jobs_after] == [dict(j) for j in jobs_before]


async def test_real_advisories_name_an_uploaded_package(start_service: StartService) -> None:
    """A real PyPA advisory (../shared/data/osv) names an uploaded django: listed on the
    artifact, not malicious, so its scan passes; a real MAL- entry, if the data holds one,
    blocks its package."""
    advisory = shared_data("osv", "PyPI", "PYSEC-2008-1.json")
    async with registry(start_service) as r:
        await r.api.new_project("acme")
        await import_osv(r, {advisory.name: await asyncio.to_thread(advisory.read_bytes)})
        repo = await r.new_repo("acme", "pypi", quarantine_new=True)
        django = await r.register(
            repo["id"], "Django-1.0.1.tar.gz", name="Django", version="1.0.1", kind="sdist"
        )
        seen = await scanned(r, django.id)
        assert seen["advisories"] == ["PYSEC-2008-1"] and seen["malicious"] == []
        assert (seen["scan_status"], seen["quarantined"]) == ("passed", False)
        reply = await r.ask(rpc.ARTIFACT_GET, rpc.ArtifactGetRequest(id=django.id), rpc.Artifact)
        assert reply.advisories == ["PYSEC-2008-1"]


async def test_a_real_malicious_advisory_from_the_shared_data(
    start_service: StartService,
) -> None:
    folder = shared_data("osv")
    found = sorted(glob.glob(str(folder / "**" / "MAL-*.json"), recursive=True))
    if not found:
        import pytest

        pytest.skip(
            f"{folder} holds no MAL- advisory (PyPA and Go databases only); the OpenSSF "
            "format is exercised with advisories built in test_malicious_uploads_…"
        )
    import json
    from pathlib import Path

    path = Path(found[0])
    data = await asyncio.to_thread(path.read_bytes)
    document = json.loads(data)
    package = document["affected"][0]["package"]["name"]
    version = (document["affected"][0].get("versions") or ["0.0.1"])[0]
    async with registry(start_service) as r:
        await r.api.new_project("acme")
        await import_osv(r, {path.name: data})
        repo = await r.new_repo("acme", "pypi")
        artifact = await r.register(
            repo["id"], f"{package}-{version}.tar.gz", name=package, version=version, kind="sdist"
        )
        assert (await scanned(r, artifact.id))["scan_status"] == "blocked"
