"""The release gate's figures, on a scanner + release-decision + gateway stack of their own.

(g) ``decision_read``: authenticated ``GET /api/v1/releases/decision?repo=&commit=`` at 32
    connections, cycling over decided commits, vs the bare aiohttp + asyncpg app of figure
    (a) (``tests.bench.baseline_app``) selecting the same decision rows by primary key from a
    copy of ``release_decision.decisions`` (keyed by commit). Interleaved rounds, medians.
    The gateway answers from its hot copy kept current by ``release.decided``.
(h) ``decision_latency``: for each sample, a new commit's SBOM is uploaded and the gateway is
    polled (every 2 ms) until it shows the decision made from that scan; the clock starts
    when ``scan.completed`` reaches the bench (a core subscription on the subject). Then the
    finding that blocks is triaged ``not_affected`` and the clock runs from the arrival of
    ``finding.triaged`` until the gateway shows SHIP. p50 / p99 of each.

    .venv/bin/python -m tests.bench.gate_bench [--duration 5] [--rounds 3] [--samples 20]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import time
import uuid
import zipfile
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import asyncpg
import msgspec

from contracts.envelope import decode_event
from shared.bus import Bus
from shared.logging import configure_logging
from shared.settings import load_settings
from tests.bench import report
from tests.bench.harness import (
    BENCH_STREAM,
    BOOTSTRAP_TOKEN,
    ChildProcess,
    HarnessError,
    Infra,
    baseline_process,
    service_available,
    service_process,
)
from tests.bench.scenarios import (
    MEASUREMENT_ERRORS,
    BenchParameters,
    describe,
    interleaved_read_rounds,
    paired_read_figure,
)
from tests.bench.scenarios import read_targets as scenario_read_targets

READ_TITLE = "(g) gateway GET /api/v1/releases/decision, 32 connections"
LATENCY_TITLE = "(h) scan.completed / finding.triaged -> new decision readable at the gateway"
READ_RATIO_MIN = 1.0
READ_P99_MS_MAX = 20.0
LATENCY_P99_MS_MAX = 250.0

REPO = "bench/gate"
READ_COMMITS = 20
POLL_SECONDS = 0.002
WAIT_SECONDS = 30.0
AUTH = {"Authorization": f"Bearer {BOOTSTRAP_TOKEN}"}
# One advisory: django below 3.2.25 is CRITICAL, so a scan of django 3.2.0 is NO_SHIP.
ADVISORY = {
    "id": "GHSA-bench-0001",
    "modified": "2024-03-01T00:00:00Z",
    "aliases": ["CVE-2024-0001"],
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "Django"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.2.25"}]}],
        }
    ],
    "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
}


def sbom(django: str) -> bytes:
    """Django at ``django`` and a component of its own, so no two SBOMs are the same bytes."""
    nonce = uuid.uuid4().hex[:12]
    return json.dumps(
        {
            "bomFormat": "CycloneDX",
            "specVersion": "1.5",
            "version": 1,
            "components": [
                {
                    "bom-ref": "django",
                    "type": "library",
                    "name": "django",
                    "version": django,
                    "purl": f"pkg:pypi/django@{django}",
                },
                {
                    "bom-ref": "nonce",
                    "type": "library",
                    "name": f"bench-{nonce}",
                    "version": "1.0.0",
                    "purl": f"pkg:npm/bench-{nonce}@1.0.0",
                },
            ],
        }
    ).encode()


def new_sha() -> str:
    return uuid.uuid4().hex + uuid.uuid4().hex[:8]


# ---- targets and figures (pure) ------------------------------------------------------------------
def read_targets(
    *, ratio: float | None = None, p99_ms: float | None = None, error_rate: float | None = None
) -> list[report.Target]:
    return scenario_read_targets(
        ratio=ratio,
        p99_ms=p99_ms,
        error_rate=error_rate,
        ratio_min=READ_RATIO_MIN,
        p99_ms_max=READ_P99_MS_MAX,
    )


def latency_targets(
    *, scan_p99_ms: float | None = None, triage_p99_ms: float | None = None
) -> list[report.Target]:
    return [
        report.check(
            "p99 scan.completed -> decision readable",
            op="<=",
            threshold=LATENCY_P99_MS_MAX,
            actual=scan_p99_ms,
            unit=" ms",
        ),
        report.check(
            "p99 finding.triaged -> SHIP readable",
            op="<=",
            threshold=LATENCY_P99_MS_MAX,
            actual=triage_p99_ms,
            unit=" ms",
        ),
    ]


def read_figure(rounds: list[dict[str, Any]], *, connections: int) -> report.Figure:
    return paired_read_figure(
        rounds,
        name="decision_read",
        title=READ_TITLE,
        targets=read_targets,
        baseline_description="bare aiohttp + asyncpg app, no auth: one primary-key select of "
        "the same decision row from a copy of release_decision.decisions",
        context={"connections": connections, "commits": READ_COMMITS},
    )


def latency_figure(scan: list[float], triage: list[float]) -> report.Figure:
    if not scan or not triage:
        return report.not_measured(
            "decision_latency",
            LATENCY_TITLE,
            targets=latency_targets(),
            reason="no sample completed",
        )
    s, t = report.summarize_latencies(scan), report.summarize_latencies(triage)
    return report.measured(
        "decision_latency",
        LATENCY_TITLE,
        subject={
            "scan_p50_ms": s.p50_ms,
            "scan_p99_ms": s.p99_ms,
            "scan_max_ms": s.max_ms,
            "triage_p50_ms": t.p50_ms,
            "triage_p99_ms": t.p99_ms,
            "triage_max_ms": t.max_ms,
            "samples": s.count,
        },
        baseline=None,
        baseline_description="none: the issue sets an absolute bound for this figure",
        targets=latency_targets(scan_p99_ms=s.p99_ms, triage_p99_ms=t.p99_ms),
        context={
            "poll_interval_ms": POLL_SECONDS * 1000,
            "note": "the clock starts when the event reaches a core NATS subscription of the "
            "bench and stops when a gateway GET shows the new decision",
        },
    )


# ---- the stack ---------------------------------------------------------------------------------
class Arrivals:
    """When each scan.completed (by scan id) and finding.triaged (by finding id) reached us."""

    def __init__(self) -> None:
        self.completed: dict[str, float] = {}
        self.triaged: dict[str, float] = {}

    async def subscribe(self, bus: Bus) -> None:
        await bus.nc.subscribe("scan.completed", cb=self._on_completed)
        await bus.nc.subscribe("finding.triaged", cb=self._on_triaged)

    async def _on_completed(self, msg: Any) -> None:
        now = time.perf_counter()
        payload = decode_event(msg.data, sequence=0).payload
        self.completed[str(payload.scan_id)] = now  # type: ignore[attr-defined]

    async def _on_triaged(self, msg: Any) -> None:
        now = time.perf_counter()
        payload = decode_event(msg.data, sequence=0).payload
        self.triaged[str(payload.finding_id)] = now  # type: ignore[attr-defined]


async def _json(response: aiohttp.ClientResponse, expected: int, what: str) -> Any:
    body = await response.text()
    if response.status != expected:
        raise HarnessError(f"{what} answered {response.status}: {body[:300]}")
    return json.loads(body) if body else None


async def _project(http: aiohttp.ClientSession, base: str, repo: str) -> str:
    slug = "bench-" + repo.replace("/", "-")
    async with http.post(
        f"{base}/api/v1/projects",
        json={"slug": slug, "name": "Bench gate", "repos": [repo]},
        headers=AUTH,
    ) as response:
        await _json(response, 201, "the project create")
    return slug


async def _import_advisory(http: aiohttp.ClientSession, base: str) -> None:
    bundle = io.BytesIO()
    with zipfile.ZipFile(bundle, "w") as archive:
        archive.writestr("GHSA-bench-0001.json", json.dumps(ADVISORY))
    async with http.post(
        f"{base}/api/v1/vulndb/import",
        data=bundle.getvalue(),
        headers={**AUTH, "Content-Type": "application/zip"},
    ) as response:
        await _json(response, 200, "the advisory import")


async def _upload(
    http: aiohttp.ClientSession, base: str, commit: str, django: str, *, repo: str = REPO
) -> str:
    slug = "bench-" + repo.replace("/", "-")
    async with http.post(
        f"{base}/api/v1/projects/{slug}/sboms?repo={repo}&commit={commit}",
        data=sbom(django),
        headers={**AUTH, "Content-Type": "application/vnd.cyclonedx+json"},
    ) as response:
        return str((await _json(response, 202, "the SBOM upload"))["scan_id"])


async def _decision_when(
    http: aiohttp.ClientSession, base: str, commit: str, ready: Any, *, repo: str = REPO
) -> tuple[float, dict[str, Any]]:
    """(perf_counter when a GET first showed a decision satisfying ``ready``, that view)."""
    url = f"{base}/api/v1/releases/decision?repo={repo}&commit={commit}"
    deadline = time.perf_counter() + WAIT_SECONDS
    body = ""
    while time.perf_counter() < deadline:
        async with http.get(url, headers=AUTH) as response:
            body = await response.text()
            if response.status == 200:
                view = json.loads(body)
                if ready(view):
                    return time.perf_counter(), view
            elif response.status != 404:
                raise HarnessError(f"decision read answered {response.status}: {body[:300]}")
        await asyncio.sleep(POLL_SECONDS)
    raise HarnessError(
        f"no decision of {commit} satisfied the bench within {WAIT_SECONDS:g}s; last answer "
        f"{body[:500]}"
    )


def _scanned(view: dict[str, Any]) -> bool:
    return view["revision"] > 0 and all(b["code"] != "evidence_pending" for b in view["blockers"])


async def _arrival(table: dict[str, float], key: str) -> float:
    deadline = time.perf_counter() + WAIT_SECONDS
    while key not in table:
        if time.perf_counter() > deadline:
            raise HarnessError(f"the event for {key} never reached the bench")
        await asyncio.sleep(POLL_SECONDS)
    return table[key]


async def _sample(
    http: aiohttp.ClientSession, base: str, arrivals: Arrivals
) -> tuple[float, float]:
    """One commit of a project of its own (a triage carries forward to the project's next
    snapshots): scan.completed -> NO_SHIP readable, finding.triaged -> SHIP readable."""
    repo = f"bench/s{uuid.uuid4().hex[:10]}"
    await _project(http, base, repo)
    commit = new_sha()
    scan_id = await _upload(http, base, commit, "3.2.0", repo=repo)

    def from_this_scan(view: dict[str, Any]) -> bool:
        codes = [b["code"] for b in view["blockers"]]
        return view["evidence"].get("snapshot_id") == scan_id and codes == ["vulnerability"]

    seen_at, view = await _decision_when(http, base, commit, from_this_scan, repo=repo)
    scan_latency = seen_at - await _arrival(arrivals.completed, scan_id)
    finding = view["blockers"][0]["ref"]
    await _triage(http, base, finding)
    shipped_at, _ = await _decision_when(
        http, base, commit, lambda v: v["decision"] == "SHIP", repo=repo
    )
    triage_latency = shipped_at - await _arrival(arrivals.triaged, finding)
    return scan_latency, triage_latency


async def _triage(http: aiohttp.ClientSession, base: str, finding: str) -> None:
    """The decision is made from the scan's result, before the scanner's own findings table
    has the rows: a triage that early is a 404, asked again (outside the timed window)."""
    deadline = time.perf_counter() + WAIT_SECONDS
    while True:
        async with http.patch(
            f"{base}/api/v1/findings/{finding}",
            json={"state": "not_affected", "justification": "code_not_reachable"},
            headers={**AUTH, "If-Match": "*"},
        ) as response:
            if response.status != 404 or time.perf_counter() > deadline:
                await _json(response, 200, "the triage")
                return
        await asyncio.sleep(0.01)


async def _vulndb_ready(http: aiohttp.ClientSession, base: str) -> None:
    """Scans match against the advisories once the scanner has loaded the import: until a
    scan of the vulnerable version is NO_SHIP, the samples would measure nothing."""
    deadline = time.perf_counter() + WAIT_SECONDS
    while time.perf_counter() < deadline:
        commit = new_sha()
        await _upload(http, base, commit, "3.2.0")
        _, view = await _decision_when(http, base, commit, _scanned)
        if view["decision"] == "NO_SHIP":
            return
    raise HarnessError("scans did not see the bench advisory")


async def _baseline_table(database_url: str) -> str:
    """The decision rows, keyed by commit, for the baseline app's ``WHERE id = $1``."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("CREATE SCHEMA IF NOT EXISTS bench_baseline")
        # DDL takes no parameters; REPO is a constant of this module.
        await conn.execute(
            "CREATE TABLE bench_baseline.decisions AS SELECT commit AS id, * "
            f"FROM release_decision.decisions WHERE repo = '{REPO}'"
        )
        await conn.execute("ALTER TABLE bench_baseline.decisions ADD PRIMARY KEY (id)")
        await conn.execute("ANALYZE bench_baseline.decisions")
    finally:
        await conn.close()
    return "bench_baseline.decisions"


async def _read_rounds(
    params: BenchParameters, *, gateway: ChildProcess, baseline: ChildProcess, commits: list[str]
) -> list[dict[str, Any]]:
    contenders = {
        "baseline": ([f"{baseline.base_url}/projects/{c}" for c in commits], {}),
        "gateway": (
            [
                f"{gateway.base_url}/api/v1/releases/decision?repo={REPO}&commit={c}"
                for c in commits
            ],
            AUTH,
        ),
    }
    return await interleaved_read_rounds(
        params, contenders, servers={"baseline": baseline, "gateway": gateway}, label="g"
    )


async def _started(stack: AsyncExitStack, process: ChildProcess) -> ChildProcess:
    stack.callback(process.stop)
    process.start()
    await process.wait_ready()
    return process


async def _measure(
    infra: Infra, params: BenchParameters, samples: int
) -> tuple[report.Figure, report.Figure]:
    await infra.reset_stream()
    database_url = await infra.fresh_database("gate")
    settings = load_settings({}, nats_url=infra.nats_url, stream_name=BENCH_STREAM, service="bench")
    bus = await Bus.connect(settings, name="gatehouse-bench-gate")
    try:
        async with AsyncExitStack() as stack:
            for service in ("scanner", "release-decision", "gateway"):
                process = service_process(infra, service, database_url=database_url)
                await _started(stack, process)
                if service == "gateway":
                    gateway = process
            await bus.ensure_stream()
            arrivals = Arrivals()
            await arrivals.subscribe(bus)
            base = gateway.base_url
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
                await _import_advisory(http, base)
                await _project(http, base, REPO)
                await _vulndb_ready(http, base)
                print("  (h) timing decisions after scans and triage …", flush=True)
                scan_latencies: list[float] = []
                triage_latencies: list[float] = []
                for _ in range(samples):
                    scan, triage = await _sample(http, base, arrivals)
                    scan_latencies.append(scan)
                    triage_latencies.append(triage)
                latency = latency_figure(scan_latencies, triage_latencies)
                print(f"  (h) {latency.subject}", flush=True)
                commits = [new_sha() for _ in range(READ_COMMITS)]
                for n, commit in enumerate(commits):
                    await _upload(http, base, commit, "3.2.0" if n % 2 else "4.2.0")
                for commit in commits:
                    await _decision_when(http, base, commit, _scanned)
            table = await _baseline_table(database_url)
            pool_max = load_settings({}).db_pool_max
            baseline = await _started(
                stack,
                baseline_process(infra, database_url=database_url, table=table, pool_max=pool_max),
            )
            rounds = await _read_rounds(params, gateway=gateway, baseline=baseline, commits=commits)
            return read_figure(rounds, connections=params.connections), latency
    finally:
        await bus.close()


async def measure_gate(
    infra: Infra, params: BenchParameters, *, samples: int = 20
) -> list[report.Figure]:
    """Figures (g) and (h); a failure leaves both "not measured" with the reason."""
    missing = next(
        filter(None, (service_available(s) for s in ("scanner", "release-decision", "gateway"))),
        None,
    )
    try:
        if missing:
            raise HarnessError(missing)
        read, latency = await _measure(infra, params, samples)
    except MEASUREMENT_ERRORS as exc:
        reason = describe(exc)[:2000]
        return [
            report.not_measured("decision_read", READ_TITLE, reason=reason, targets=read_targets()),
            report.not_measured(
                "decision_latency", LATENCY_TITLE, reason=reason, targets=latency_targets()
            ),
        ]
    return [read, latency]


def main() -> None:
    defaults = BenchParameters()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=defaults.duration)
    parser.add_argument("--rounds", type=int, default=defaults.rounds)
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args()
    configure_logging(service="bench", level="error")
    params = BenchParameters(duration=args.duration, rounds=args.rounds)
    infra = Infra.start()
    try:
        figures = asyncio.run(measure_gate(infra, params, samples=args.samples))
        asyncio.run(infra.drop_databases())
    finally:
        infra.stop()
    print(msgspec.json.format(msgspec.json.encode(figures), indent=2).decode())


if __name__ == "__main__":
    main()
