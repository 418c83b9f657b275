"""(d) Scan: a 10,000-component CycloneDX SBOM against >= 100,000 advisories, from upload to
``scan.completed``, as a ratio to the time msgspec alone needs to decode the same SBOM.
(e) Re-match: 100 projects' latest snapshots after importing 1,000 new advisories.

    .venv/bin/python -m tests.bench.scan_bench [--rounds 3] [--advisories 100000]

The scanner and the gateway run as child processes on their own database and the bench
stream. The database holds the real PyPI + Go advisories of ../shared/data/osv (when present)
plus synthetic ones (``tests.bench.synthetic_osv``) to the requested total. The SBOM
(``generate_sbom``) is shaped like real generator output — purls, hashes, licenses, a
dependency graph — and half of its components name a package that has advisories, at a
random version, so the scan finds thousands of findings and publishes a ``finding.created``
for each (every round scans into a new project: its first snapshot, the worst case).

Timed per round, from the moment the upload request starts: the 202 answer, the
``scan.completed`` event arriving on the stream (the headline), ``GET /api/v1/scans/{id}``
answering ``succeeded`` (the snapshot's rows committed), and ``scan.findings-announced``
(every ``finding.*`` event published; the next round waits for it). The floor is
``msgspec.json.decode`` of the same bytes into Python objects, best of several runs.

(e) then scans 100 more projects (100 components each, five of them in range of one of the
1,000 advisories about to be imported, the rest drawn from the whole package space) and
imports 1,000 new synthetic advisories (``NEW-*``): timed from the import request until the
last ``scan.rematched`` of the re-match jobs it caused (each follows that project's
``finding.created`` / ``finding.resolved`` events), with the import's own answer time apart.
The issue sets no bound; 10 s is ours (a new CVE must flip yesterday's SHIP within seconds,
not minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import msgspec

from contracts.envelope import decode_event
from contracts.events.scans import ScanCompleted, ScanFindingsAnnounced
from contracts.rpc.scanner_vulndb import (
    IMPORT_OSV,
    IMPORT_TIMEOUT_SECONDS,
    SERVICE,
    ImportSummary,
    OsvImportRequest,
)
from shared.blobs import BlobStore
from shared.bus import Bus
from shared.logging import configure_logging
from shared.rpc import CallContext, call
from shared.settings import load_settings
from tests.bench import report, synthetic_osv
from tests.bench.harness import (
    BENCH_STREAM,
    BOOTSTRAP_TOKEN,
    HarnessError,
    Infra,
    service_process,
)
from tests.bench.vulndb_bench import memory_kib

TITLE = "(d) scan a 10,000-component CycloneDX SBOM against >= 100,000 advisories"
REMATCH_TITLE = "(e) re-match 100 projects after importing 1,000 new advisories"
SECONDS_MAX = 3.0
RATIO_MAX = 10.0
REMATCH_SECONDS_MAX = 10.0
SHARED_OSV = Path(__file__).resolve().parents[3] / "shared" / "data" / "osv"
CTX = CallContext(request_id="bench", actor="bench", roles=("ADMIN",))
LICENSES = ("MIT", "Apache-2.0", "BSD-3-Clause", "ISC", "GPL-3.0-only", "MPL-2.0")
SCAN_TIMEOUT_SECONDS = 120.0


MEMORY_TITLE = "(f) scanner memory with >= 100,000 advisories loaded"
# The issue names no bound; 1 GiB keeps the scanner on a small container's budget.
MEMORY_MAX_MIB = 1024.0


def targets(*, seconds: float | None = None, ratio: float | None = None) -> list[report.Target]:
    return [
        report.check(
            "upload -> scan.completed", op="<=", threshold=SECONDS_MAX, actual=seconds, unit=" s"
        ),
        report.check(
            "vs msgspec decode floor", op="<=", threshold=RATIO_MAX, actual=ratio, unit="x"
        ),
    ]


def generate_sbom(count: int, *, packages: int, seed: int = 7) -> bytes:
    """A CycloneDX 1.5 JSON SBOM of ``count`` components; half hit synthetic advisories."""
    rng = random.Random(seed)
    components = []
    for i in range(count):
        ecosystem = synthetic_osv.ECOSYSTEMS[i % len(synthetic_osv.ECOSYSTEMS)]
        package = rng.randrange(packages) if i % 2 == 0 else packages + i  # half miss
        version = f"{rng.randint(0, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 30)}"
        purl = synthetic_osv.component_purl(ecosystem, package, version)
        name = purl.split("/")[-1].split("@")[0]
        components.append(
            {
                "bom-ref": f"c{i}",
                "type": "library",
                "name": name,
                "version": version,
                "purl": purl,
                "hashes": [{"alg": "SHA-256", "content": f"{i:064x}"}],
                "licenses": [{"license": {"id": LICENSES[i % len(LICENSES)]}}],
                "externalReferences": [
                    {"type": "distribution", "url": f"https://registry.example/{name}"}
                ],
            }
        )
    dependencies = [{"ref": "app", "dependsOn": [f"c{i}" for i in range(min(50, count))]}]
    dependencies += [
        {"ref": f"c{i}", "dependsOn": [f"c{j}" for j in range(i + 1, min(i + 4, count))]}
        for i in range(count)
    ]
    document = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.UUID(int=seed)}",
        "version": 1,
        "metadata": {"component": {"bom-ref": "app", "type": "application", "name": "app"}},
        "components": components,
        "dependencies": dependencies,
    }
    return json.dumps(document, indent=1).encode()


def decode_floor(data: bytes, *, runs: int = 5) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        msgspec.json.decode(data)
        best = min(best, time.perf_counter() - started)
    return best


async def _import(bus: Bus, blobs: BlobStore, data: bytes, name: str) -> ImportSummary:
    digest = await blobs.put(data)
    return await call(
        bus,
        SERVICE,
        IMPORT_OSV,
        OsvImportRequest(digest=digest, name=name),
        ImportSummary,
        ctx=CTX,
        timeout=IMPORT_TIMEOUT_SECONDS,
    )


async def load_advisories(bus: Bus, total: int) -> dict[str, Any]:
    blobs = await BlobStore.open(bus)
    loaded: dict[str, Any] = {"real": 0, "synthetic": 0}
    if SHARED_OSV.is_dir():
        real = await asyncio.to_thread(synthetic_osv.folder_bundle, SHARED_OSV)
        summary = await _import(bus, blobs, real, "real PyPI+Go")
        loaded["real"] = summary.counts.added
    synthetic = max(total, 1)
    bundle = await asyncio.to_thread(synthetic_osv.bundle, synthetic_osv.advisories(synthetic))
    summary = await _import(bus, blobs, bundle, f"synthetic {synthetic}")
    loaded["synthetic"] = summary.counts.added
    loaded["packages"] = max(1, synthetic // 3)
    return loaded


class _Completions:
    """scan.completed and scan.findings-announced events as they reach the stream (core
    subscriptions on the subjects)."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[float, ScanCompleted]] = {}
        self.announced: dict[str, float] = {}
        self.changed = asyncio.Event()

    async def subscribe(self, bus: Bus) -> list[Any]:
        return [
            await bus.nc.subscribe("scan.completed", cb=self.on_message),
            await bus.nc.subscribe("scan.findings-announced", cb=self.on_announced),
        ]

    async def on_message(self, msg: Any) -> None:
        event = decode_event(msg.data, sequence=0)
        assert isinstance(event.payload, ScanCompleted)
        self.seen[event.payload.scan_id] = (time.perf_counter(), event.payload)
        self.changed.set()

    async def on_announced(self, msg: Any) -> None:
        event = decode_event(msg.data, sequence=0)
        assert isinstance(event.payload, ScanFindingsAnnounced)
        self.announced[event.payload.scan_id] = time.perf_counter()
        self.changed.set()

    async def wait(self, scan_id: str) -> tuple[float, ScanCompleted]:
        async with asyncio.timeout(SCAN_TIMEOUT_SECONDS):
            while scan_id not in self.seen:
                self.changed.clear()
                await self.changed.wait()
        return self.seen[scan_id]

    async def wait_announced(self, scan_id: str) -> float:
        async with asyncio.timeout(SCAN_TIMEOUT_SECONDS):
            while scan_id not in self.announced:
                self.changed.clear()
                await self.changed.wait()
        return self.announced[scan_id]


async def _round(
    http: aiohttp.ClientSession, base: str, sbom: bytes, completions: _Completions
) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {BOOTSTRAP_TOKEN}"}
    slug = f"bench-{uuid.uuid4().hex[:10]}"
    async with http.post(
        f"{base}/api/v1/projects", json={"slug": slug, "name": "bench"}, headers=auth
    ) as created:
        if created.status != 201:
            raise HarnessError(f"project create answered {created.status}: {await created.text()}")
    started = time.perf_counter()
    async with http.post(
        f"{base}/api/v1/projects/{slug}/sboms",
        data=sbom,
        headers={**auth, "Content-Type": "application/vnd.cyclonedx+json"},
    ) as upload:
        body = await upload.json(content_type=None)
        if upload.status != 202:
            raise HarnessError(f"upload answered {upload.status}: {body}")
    accepted = time.perf_counter()
    scan_id = body["scan_id"]
    completed_at, completed = await completions.wait(scan_id)
    while True:
        async with http.get(f"{base}/api/v1/scans/{scan_id}", headers=auth) as got:
            scan = await got.json(content_type=None)
        if scan.get("status") in ("succeeded", "failed", "cancelled"):
            break
        await asyncio.sleep(0.01)
    visible = time.perf_counter()
    if scan["status"] != "succeeded":
        raise HarnessError(f"the bench scan {scan['status']}: {scan.get('error')}")
    # The next round starts once this scan's work is all done.
    announced = await completions.wait_announced(scan_id)
    return {
        "scan_id": scan_id,
        "accepted_s": round(accepted - started, 3),
        "completed_s": round(completed_at - started, 3),
        "visible_s": round(visible - started, 3),
        "announced_s": round(announced - started, 3),
        "components": completed.component_count,
        "findings": completed.finding_count,
        "not_evaluated": completed.not_evaluated_count,
        "advisories": completed.vulndb_advisories,
    }


def rematch_targets(seconds: float | None = None) -> list[report.Target]:
    return [
        report.check(
            "import -> last scan.rematched",
            op="<=",
            threshold=REMATCH_SECONDS_MAX,
            actual=seconds,
            unit=" s",
        )
    ]


async def measure_scan(
    infra: Infra, *, rounds: int = 3, advisories: int = 100_000, components: int = 10_000
) -> list[report.Figure]:
    """Figures (d) and (e), from one scanner holding the advisories."""
    try:
        return await _measure(infra, rounds=rounds, advisories=advisories, components=components)
    except (HarnessError, aiohttp.ClientError, OSError, TimeoutError) as exc:
        reason = str(exc)[:2000]
        return [
            report.not_measured("scan", TITLE, reason=reason, targets=targets()),
            report.not_measured("rematch", REMATCH_TITLE, reason=reason, targets=rematch_targets()),
            report.not_measured(
                "scanner_memory", MEMORY_TITLE, reason=reason, targets=memory_targets()
            ),
        ]


async def _measure(
    infra: Infra, *, rounds: int, advisories: int, components: int
) -> list[report.Figure]:
    await infra.reset_stream(BENCH_STREAM)
    database_url = await infra.fresh_database("scan")
    scanner = service_process(infra, "scanner", database_url=database_url)
    # Its scan_completed log lines carry the seconds per stage of each scan.
    scanner.env["GATEHOUSE_LOG_LEVEL"] = "info"
    gateway = service_process(infra, "gateway", database_url=database_url)
    settings = load_settings(
        {}, nats_url=infra.nats_url, database_url=database_url, stream_name=BENCH_STREAM
    )
    scanner.start()
    gateway.start()
    try:
        await scanner.wait_ready()
        await gateway.wait_ready()
        empty_memory = memory_kib(scanner.pid)
        bus = await Bus.connect(settings, name="bench-scan")
        try:
            loaded = await load_advisories(bus, advisories)
            loaded_memory = memory_kib(scanner.pid)
            sbom = await asyncio.to_thread(generate_sbom, components, packages=loaded["packages"])
            floor = await asyncio.to_thread(decode_floor, sbom)
            completions = _Completions()
            subs = await completions.subscribe(bus)
            rows = []
            async with aiohttp.ClientSession() as http:
                for _ in range(rounds):
                    rows.append(await _round(http, gateway.base_url, sbom, completions))
                rematch = await _rematch(
                    bus, http, gateway.base_url, completions, database_url, loaded["packages"]
                )
            for sub in subs:
                await sub.unsubscribe()
        finally:
            await bus.close()
    finally:
        gateway.stop()
        scanner.stop()
    stages = _stage_seconds(scanner.log_path)
    for row in rows:
        row["worker_stages_s"] = stages.get(row.pop("scan_id"), {})
    completed = report.median([r["completed_s"] for r in rows])
    ratio = completed / floor
    scan_figure = report.measured(
        "scan",
        TITLE,
        subject={
            "completed_s": round(completed, 3),
            "visible_s": round(report.median([r["visible_s"] for r in rows]), 3),
            "announced_s": round(report.median([r["announced_s"] for r in rows]), 3),
            "accepted_s": round(report.median([r["accepted_s"] for r in rows]), 3),
        },
        baseline={"msgspec_decode_s": round(floor, 4)},
        baseline_description="msgspec.json.decode of the same SBOM bytes into Python objects "
        "(best of 5), in the bench process",
        ratio_value=ratio,
        ratio_meaning="median upload -> scan.completed seconds / msgspec decode seconds",
        targets=targets(seconds=completed, ratio=ratio),
        rounds=rows,
        context={
            "sbom_bytes": len(sbom),
            "components": components,
            "advisories_real": loaded["real"],
            "advisories_synthetic": loaded["synthetic"],
        },
    )
    rematch_figure = report.measured(
        "rematch",
        REMATCH_TITLE,
        subject={
            "last_rematched_s": rematch["last_rematched_s"],
            "import_answered_s": rematch["import_answered_s"],
        },
        targets=rematch_targets(rematch["last_rematched_s"]),
        context={k: v for k, v in rematch.items() if not k.endswith("_s")},
    )
    return [scan_figure, rematch_figure, memory_figure(empty_memory, loaded_memory, loaded)]


def memory_targets(peak_mib: float | None = None) -> list[report.Target]:
    return [
        report.check(
            "scanner peak RSS", op="<=", threshold=MEMORY_MAX_MIB, actual=peak_mib, unit=" MiB"
        )
    ]


def memory_figure(
    empty: dict[str, int], loaded: dict[str, int], advisories: dict[str, Any]
) -> report.Figure:
    """(f) the scanner's memory with the advisory database loaded, against itself empty."""
    if "VmHWM" not in loaded or "VmRSS" not in empty:
        return report.not_measured(
            "scanner_memory",
            MEMORY_TITLE,
            reason="/proc/<pid>/status is not readable here",
            targets=memory_targets(),
        )
    peak = loaded["VmHWM"] / 1024
    return report.measured(
        "scanner_memory",
        MEMORY_TITLE,
        subject={"peak_rss_mib": round(peak, 1), "rss_mib": round(loaded["VmRSS"] / 1024, 1)},
        baseline={"empty_rss_mib": round(empty["VmRSS"] / 1024, 1)},
        baseline_description="the same scanner process, ready, before any advisory was imported",
        ratio_value=peak / (empty["VmRSS"] / 1024),
        ratio_meaning="peak RSS with the database loaded (import included) / RSS empty",
        targets=memory_targets(peak),
        context={
            "advisories_real": advisories["real"],
            "advisories_synthetic": advisories["synthetic"],
        },
    )


def _purl(ecosystem: str, name: str, version: str) -> str:
    if ecosystem == "Maven":
        name = name.replace(":", "/")
    return f"pkg:{synthetic_osv.PURL_TYPES[ecosystem]}/{name}@{version}"


def rematch_sboms(
    new: list[dict[str, Any]], *, projects: int, components: int, packages: int, seed: int = 3
) -> list[bytes]:
    """One SBOM per project: five components in range of a new advisory, the rest random."""
    rng = random.Random(seed)
    documents = []
    for p in range(projects):
        chosen: dict[str, tuple[str, str]] = {}
        for advisory in new[p * 5 : p * 5 + 5]:
            affected = advisory["affected"][0]
            ecosystem, name = affected["package"]["ecosystem"], affected["package"]["name"]
            introduced = affected["ranges"][0]["events"][0]["introduced"]
            version = (
                introduced if introduced != "0" else ("v0.0.0" if ecosystem == "Go" else "0.0.0")
            )
            chosen[name] = (ecosystem, version)
        while len(chosen) < components:
            ecosystem = synthetic_osv.ECOSYSTEMS[rng.randrange(len(synthetic_osv.ECOSYSTEMS))]
            name = synthetic_osv.package_name(ecosystem, rng.randrange(packages))
            version = f"{rng.randint(0, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 30)}"
            chosen.setdefault(name, (ecosystem, "v" + version if ecosystem == "Go" else version))
        document = {
            "bomFormat": "CycloneDX",
            "specVersion": "1.5",
            "version": 1,
            "components": [
                {
                    "bom-ref": f"c{i}",
                    "type": "library",
                    "name": name,
                    "version": version,
                    "purl": _purl(ecosystem, name, version),
                }
                for i, (name, (ecosystem, version)) in enumerate(chosen.items())
            ],
        }
        documents.append(json.dumps(document).encode())
    return documents


async def _rematch(
    bus: Bus,
    http: aiohttp.ClientSession,
    base: str,
    completions: _Completions,
    database_url: str,
    packages: int,
    *,
    projects: int = 100,
    components: int = 100,
    count: int = 1_000,
) -> dict[str, Any]:
    new = list(synthetic_osv.advisories(count, seed=99, packages=packages, prefix="NEW"))
    sboms = rematch_sboms(new, projects=projects, components=components, packages=packages)
    auth = {"Authorization": f"Bearer {BOOTSTRAP_TOKEN}"}
    for i, sbom in enumerate(sboms):
        slug = f"rematch-{i:03d}-{uuid.uuid4().hex[:6]}"
        async with http.post(
            f"{base}/api/v1/projects", json={"slug": slug, "name": "bench"}, headers=auth
        ) as created:
            if created.status != 201:
                raise HarnessError(f"project create answered {created.status}")
        async with http.post(
            f"{base}/api/v1/projects/{slug}/sboms",
            data=sbom,
            headers={**auth, "Content-Type": "application/json"},
        ) as upload:
            body = await upload.json(content_type=None)
            if upload.status != 202:
                raise HarnessError(f"upload answered {upload.status}: {body}")
        await completions.wait_announced(body["scan_id"])

    rematched: list[float] = []
    created: list[float] = []
    resolved: list[float] = []

    async def on_rematched(_: Any) -> None:
        rematched.append(time.perf_counter())

    async def on_created(msg: Any) -> None:
        if b'"cause":"rematch"' in msg.data:
            created.append(time.perf_counter())

    async def on_resolved(_: Any) -> None:
        resolved.append(time.perf_counter())

    subs = [
        await bus.nc.subscribe("scan.rematched", cb=on_rematched),
        await bus.nc.subscribe("finding.created", cb=on_created),
        await bus.nc.subscribe("finding.resolved", cb=on_resolved),
    ]
    blobs = await BlobStore.open(bus)
    bundle = await asyncio.to_thread(synthetic_osv.bundle, new)
    digest = await blobs.put(bundle)
    started = time.perf_counter()
    summary = await call(
        bus,
        SERVICE,
        IMPORT_OSV,
        OsvImportRequest(digest=digest, name="1,000 new"),
        ImportSummary,
        ctx=CTX,
        timeout=IMPORT_TIMEOUT_SECONDS,
    )
    answered = time.perf_counter()
    conn = await asyncpg.connect(database_url)
    try:
        async with asyncio.timeout(SCAN_TIMEOUT_SECONDS):
            while True:
                jobs = await conn.fetchrow(
                    "SELECT count(*) AS total, count(*) FILTER (WHERE status = 'done') AS done "
                    "FROM scanner.jobs WHERE kind = 'rematch'"
                )
                if jobs["total"] and jobs["total"] == jobs["done"] == len(rematched):
                    break
                await asyncio.sleep(0.05)
    finally:
        await conn.close()
    for sub in subs:
        await sub.unsubscribe()
    return {
        "import_answered_s": round(answered - started, 3),
        "last_rematched_s": round(max(rematched) - started, 3),
        "projects": projects,
        "components_per_project": components,
        "advisories_added": summary.counts.added,
        "rematch_jobs": len(rematched),
        "findings_created": len(created),
        "findings_resolved": len(resolved),
    }


def _stage_seconds(log_path: Path) -> dict[str, dict[str, float]]:
    """Seconds per worker stage of each scan, from the scanner's scan_completed log lines."""
    found: dict[str, dict[str, float]] = {}
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return found
    for line in lines:
        if '"scan_completed"' not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        found[record.get("scan_id", "")] = record.get("seconds", {})
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--advisories", type=int, default=100_000)
    parser.add_argument("--components", type=int, default=10_000)
    args = parser.parse_args()
    configure_logging(service="bench", level="error")
    infra = Infra.start()
    try:
        figures = asyncio.run(
            measure_scan(
                infra, rounds=args.rounds, advisories=args.advisories, components=args.components
            )
        )
        asyncio.run(infra.drop_databases())
    finally:
        infra.stop()
    print(msgspec.json.format(msgspec.json.encode(figures), indent=2).decode())


if __name__ == "__main__":
    main()
