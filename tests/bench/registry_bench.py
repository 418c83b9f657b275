"""The artifact registry, on a gateway and a scanner of their own (child processes) sharing
one artifact blob directory:

(o) ``pip_download``: 50 small wheels (``tests.bench.wheels``: real, installable) uploaded
    with ``twine`` to a public pypi repository, then ``pip download --no-deps
    --no-cache-dir -d <tmp> -i <index> <the 50 names>`` — a real pip subprocess, the same
    flags for both — against the gateway's simple index and against ``pypiserver`` serving
    the same files from a folder on this machine. Rounds interleaved (B S, S B, …) after a
    warm-up of each; the ratio is the median of ours / pypiserver's wheels per second;
    target >= 1.0.
(p) ``quarantine_release``: a direct multipart upload (the form twine posts) to a
    ``quarantine_new`` repository, until the file URL answers 200: the clock runs from the
    upload's first byte, through the scan on upload and ``artifact.quarantine-released``
    (awaited on the bus), to the first 200. Target p99 <= 1 s. Needs scan on upload: without
    it nothing ever releases the file and the figure says so.
(q) ``streaming``: a 2 GiB generic ``PUT`` then ``GET`` through the gateway while its RSS
    (``/proc/<pid>/status`` ``VmRSS``, sampled every 20 ms) is watched: the target is a
    growth below 64 MiB over the RSS before the transfer. The same bytes through a bare
    aiohttp app that streams to a file (``tests.bench.stream_baseline_app``) give the
    throughput ratio, reported (the issue bounds memory, not speed).

    .venv/bin/python -m tests.bench.registry_bench [--only pip|quarantine|streaming]
        [--rounds 3] [--wheels 50] [--uploads 100] [--stream-mib 2048] [--stream-rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import os
import resource
import shutil
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import nats
from nats.aio.msg import Msg

from contracts.envelope import UnknownEventType, decode_event
from contracts.events.registry import ArtifactQuarantineReleased, ArtifactScanned
from shared.bus import Bus
from shared.embedded import free_port
from shared.logging import configure_logging
from shared.settings import load_settings
from tests.bench import report
from tests.bench.harness import (
    BENCH_STREAM,
    BOOTSTRAP_TOKEN,
    ChildProcess,
    HarnessError,
    Infra,
    service_available,
    service_process,
)
from tests.bench.scan_bench import load_advisories
from tests.bench.scenarios import MEASUREMENT_ERRORS, BenchParameters, describe
from tests.bench.vulndb_bench import memory_kib
from tests.bench.wheels import WheelSpec, bench_specs, wheel_bytes, write_wheels

PIP_TITLE = "(o) pip download of 50 wheels through the simple index vs pypiserver"
QUARANTINE_TITLE = (
    "(p) upload -> scanned -> downloadable (first 200) in a quarantine_new repository"
)
STREAM_TITLE = "(q) streaming a 2 GiB generic upload + download: the gateway's RSS growth"
PIP_RATIO_MIN = 1.0
QUARANTINE_P99_MS_MAX = 1000.0
STREAM_RSS_MIB_MAX = 64.0
FIGURES = ("pip", "quarantine", "streaming")
AUTH = {"Authorization": f"Bearer {BOOTSTRAP_TOKEN}"}
CLIENT_ENV = {
    "PIP_NO_INPUT": "1",
    "PIP_CONFIG_FILE": os.devnull,
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PIP_NO_PYTHON_VERSION_WARNING": "1",
    "TWINE_NON_INTERACTIVE": "1",
    "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
    "NO_PROXY": "*",
}
CLIENT_TIMEOUT_SECONDS = 300.0
# How long an upload may wait for its scan before the figure says scan on upload is missing.
SCAN_WAIT_SECONDS = 20.0
RSS_SAMPLE_SECONDS = 0.02
STREAM_CHUNK_BYTES = 1024 * 1024
MIB = 1024 * 1024


def pip_targets(ratio: float | None = None) -> list[report.Target]:
    return [
        report.check(
            "wheels/s vs pypiserver", op=">=", threshold=PIP_RATIO_MIN, actual=ratio, unit="x"
        )
    ]


def quarantine_targets(p99_ms: float | None = None) -> list[report.Target]:
    return [report.check("p99", op="<=", threshold=QUARANTINE_P99_MS_MAX, actual=p99_ms, unit="ms")]


def stream_targets(growth_mib: float | None = None) -> list[report.Target]:
    return [
        report.check(
            "gateway RSS growth (largest, upload or download)",
            op="<=",
            threshold=STREAM_RSS_MIB_MAX,
            actual=growth_mib,
            unit="MiB",
        )
    ]


_TITLES: dict[str, tuple[str, str, Callable[[], list[report.Target]]]] = {
    "pip": ("pip_download", PIP_TITLE, pip_targets),
    "quarantine": ("quarantine_release", QUARANTINE_TITLE, quarantine_targets),
    "streaming": ("streaming", STREAM_TITLE, stream_targets),
}


def unmeasured(figure: str, reason: str) -> report.Figure:
    key, title, targets = _TITLES[figure]
    return report.not_measured(key, title, reason=reason, targets=targets())


@dataclass
class RegistryParameters:
    wheels: int = 50
    # Where pip keeps its temporary files (TMPDIR), for both contenders: "auto" is a folder
    # on /dev/shm (tmpfs) when there is one, "" the system's default. See pip_tmpdir().
    pip_tmpdir: str = "auto"
    uploads: int = 100  # (p) samples
    advisories: int = 10_000  # (p) synthetic advisories in the vulnerability database
    stream_bytes: int = 2 * 1024**3
    stream_rounds: int = 2


# ---- the stack ---------------------------------------------------------------------------------
@dataclass
class Stack:
    http: aiohttp.ClientSession
    gateway: ChildProcess
    scanner: ChildProcess
    work_dir: Path
    project: str = ""
    stack: AsyncExitStack = field(default_factory=AsyncExitStack)

    @property
    def base(self) -> str:
        return self.gateway.base_url

    async def api(self, method: str, path: str, body: Any) -> dict[str, Any]:
        async with self.http.request(method, self.base + path, json=body, headers=AUTH) as r:
            answer = await r.json(content_type=None)
            if r.status >= 300:
                raise HarnessError(f"{method} {path} answered {r.status}: {answer}")
            return dict(answer)

    async def new_repository(self, fmt: str, *, quarantine_new: bool = False) -> str:
        slug = f"{fmt}-{uuid.uuid4().hex[:8]}"
        body = {
            "project_id": self.project,
            "slug": slug,
            "format": fmt,
            "visibility": "public",
            "quarantine_new": quarantine_new,
        }
        await self.api("POST", "/api/v1/repos", body)
        return slug

    def pypi_url(self, slug: str) -> str:
        return f"{self.base}/pypi/{self.project}/{slug}"


async def measure_registry(
    infra: Infra,
    params: BenchParameters | None = None,
    registry: RegistryParameters | None = None,
    *,
    figures: tuple[str, ...] = FIGURES,
) -> list[report.Figure]:
    """The registry's figures (in ``figures``' order); one that cannot be measured says why."""
    params = params or BenchParameters()
    registry = registry or RegistryParameters()
    try:
        missing = [m for s in ("gateway", "scanner") if (m := service_available(s))]
        if missing:
            raise HarnessError("; ".join(missing))
        return await _measure(infra, params, registry, figures)
    except MEASUREMENT_ERRORS as exc:
        return [unmeasured(f, describe(exc)[:2000]) for f in figures]


async def _measure(
    infra: Infra, params: BenchParameters, registry: RegistryParameters, figures: tuple[str, ...]
) -> list[report.Figure]:
    await infra.reset_stream(BENCH_STREAM)
    database_url = await infra.fresh_database("registry")
    work_dir = infra.work_dir / f"registry-{uuid.uuid4().hex[:6]}"
    blobs = work_dir / "artifacts"
    async with AsyncExitStack() as stack:
        stack.callback(shutil.rmtree, work_dir, True)
        scanner = service_process(infra, "scanner", database_url=database_url)
        gateway = service_process(infra, "gateway", database_url=database_url)
        for process in (scanner, gateway):
            # One blob directory, as one data dir would be in a deployment.
            process.env["GATEHOUSE_ARTIFACT_DIR"] = str(blobs)
            stack.callback(process.stop)
            process.start()
        for process in (scanner, gateway):
            await process.wait_ready()
        http = await stack.enter_async_context(
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CLIENT_TIMEOUT_SECONDS))
        )
        s = Stack(http=http, gateway=gateway, scanner=scanner, work_dir=work_dir)
        s.project = str(
            (await s.api("POST", "/api/v1/projects", {"slug": "bench", "name": "Bench"}))["slug"]
        )
        measure: dict[str, Callable[[], Awaitable[report.Figure]]] = {
            "pip": lambda: _pip_figure(s, infra, params, registry),
            "quarantine": lambda: _quarantine_figure(s, infra, registry),
            "streaming": lambda: _stream_figure(s, infra, params, registry),
        }
        out = []
        for name in figures:
            try:
                out.append(await measure[name]())
            except MEASUREMENT_ERRORS as exc:
                out.append(unmeasured(name, describe(exc)[:2000]))
        return out


async def run_client(*args: str, env: dict[str, str] | None = None) -> str:
    """A client subprocess to its end; its output, or HarnessError with its tail."""
    process = await asyncio.create_subprocess_exec(
        *args,
        env={**os.environ, **CLIENT_ENV, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout=CLIENT_TIMEOUT_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise HarnessError(f"{' '.join(args[:4])} … ran over {CLIENT_TIMEOUT_SECONDS:g}s") from None
    text = out.decode(errors="replace")
    if process.returncode:
        raise HarnessError(
            f"{' '.join(args[1:4])} exited {process.returncode}: {text[-1500:].strip()}"
        )
    return text


# ---- (o) pip download ----------------------------------------------------------------------
def pypiserver_process(infra: Infra, folder: Path) -> ChildProcess:
    port = free_port()
    argv = [sys.executable, "-m", "pypiserver", "run", "-p", str(port), "-i", "127.0.0.1"]
    # No authentication (reads are anonymous on both sides), no fallback to pypi.org.
    argv += ["-a", ".", "-P", ".", "--disable-fallback", "--log-stream", "none", str(folder)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
    return ChildProcess(
        label="pypiserver",
        argv=argv,
        env=env,
        port=port,
        log_path=infra.work_dir / "pypiserver.log",
    )


SHM = Path("/dev/shm")


def pip_tmpdir(choice: str, work_dir: Path) -> Path | None:
    """pip's TMPDIR. pip makes a temporary folder per file it fetches — against an index with
    PEP 658 metadata, three per wheel (the metadata file, its distribution, the wheel), against
    one without, one — so on a disk where making and removing a folder is slow (this bench's
    VM: ext4 mounted with ``discard``, ~0.9 ms per folder against ~0.07 ms on tmpfs) the
    figure would measure pip's temporary folders rather than the servers. "auto": tmpfs when
    the machine has one, the same for both contenders; "": the system's default."""
    if choice == "":
        return None
    if choice != "auto":
        return Path(choice)
    if SHM.is_dir() and os.access(SHM, os.W_OK):
        return SHM / f"gatehouse-bench-pip-{work_dir.name}"
    return None


def _pip_download_args(index: str, dest: Path, names: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-cache-dir",
        "--disable-pip-version-check",
        "-q",
        "-d",
        str(dest),
        "-i",
        index,
        *names,
    ]


def file_digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


async def _pip_run(
    index: str,
    dest: Path,
    names: list[str],
    expected: dict[str, str],
    server: ChildProcess,
    *,
    tmpdir: Path | None,
) -> dict[str, Any]:
    """One ``pip download`` of every name: its wall time, the server's CPU and pip's own."""
    shutil.rmtree(dest, ignore_errors=True)
    env = None if tmpdir is None else {"TMPDIR": str(tmpdir)}
    cpu_before = server.cpu_seconds()
    pip_before = _children_cpu_seconds()
    started = time.monotonic()
    await run_client(*_pip_download_args(index, dest, names), env=env)
    elapsed = time.monotonic() - started
    pip_cpu = _children_cpu_seconds() - pip_before
    cpu_after = server.cpu_seconds()
    got = await asyncio.to_thread(file_digests, dest)
    if got != expected:
        wrong = sorted(set(got.items()) ^ set(expected.items()))[:3]
        raise HarnessError(f"pip download from {index} got other files than uploaded: {wrong}")
    shutil.rmtree(dest, ignore_errors=True)
    return {
        "seconds": elapsed,
        "server_cpu_s": None if cpu_before is None or cpu_after is None else cpu_after - cpu_before,
        "pip_cpu_s": pip_cpu,
    }


def _children_cpu_seconds() -> float:
    """User + system CPU of the reaped children (pip, once it exited; the services are
    reaped only when stopped)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def pip_round_row(runs: dict[str, list[dict[str, Any]]], wheels: int) -> dict[str, Any]:
    """One round's runs (two per contender, ABBA) as one row per contender."""
    row: dict[str, Any] = {}
    for who, done in runs.items():
        seconds = sum(r["seconds"] for r in done)
        cpu = [r["server_cpu_s"] for r in done]
        row[who] = {
            "seconds": round(seconds, 3),
            "wheels_per_second": round(report.rate(wheels * len(done), seconds), 2),
            "runs_s": [round(r["seconds"], 3) for r in done],
            "server_cpu_s": None if None in cpu else round(sum(cpu), 3),
            "pip_cpu_s": round(sum(r["pip_cpu_s"] for r in done), 3),
        }
    return row


def pip_figure(details: list[dict[str, Any]], *, context: dict[str, Any]) -> report.Figure:
    """(o) from its rounds (each a row per contender): the median of the rounds' ratios."""
    if not details:
        return unmeasured("pip", "no round was measured")
    subject = [d["subject"]["wheels_per_second"] for d in details]
    baseline = [d["baseline"]["wheels_per_second"] for d in details]
    ratio = report.paired_ratio(subject, baseline)
    return report.measured(
        "pip_download",
        PIP_TITLE,
        subject={"wheels_per_second": round(report.median(subject), 2)},
        baseline={"wheels_per_second": round(report.median(baseline), 2)},
        baseline_description="pypiserver (`python -m pypiserver run`, no auth, no fallback) "
        "serving the same wheel files from a folder, the same pip command",
        ratio_value=ratio,
        ratio_meaning="ours / pypiserver wheels per second (higher is better); each round "
        "runs pip four times, ABBA, so a drift of the machine's load cancels out",
        targets=pip_targets(ratio),
        rounds=details,
        context=context,
    )


async def _pip_figure(
    s: Stack, infra: Infra, params: BenchParameters, registry: RegistryParameters
) -> report.Figure:
    specs = bench_specs(registry.wheels)
    folder = s.work_dir / "wheels"
    paths = await asyncio.to_thread(write_wheels, folder, specs)
    expected = await asyncio.to_thread(file_digests, folder)
    names = [spec.name for spec in specs]
    slug = await s.new_repository("pypi")
    url = s.pypi_url(slug)
    print(f"  (o) uploading {len(paths)} wheels with twine …", flush=True)
    await run_client(
        sys.executable,
        "-m",
        "twine",
        "upload",
        "--disable-progress-bar",
        "--repository-url",
        f"{url}/",
        "-u",
        "__token__",
        "-p",
        BOOTSTRAP_TOKEN,
        *(str(p) for p in paths),
    )
    pypiserver = pypiserver_process(infra, folder)
    details: list[dict[str, Any]] = []
    tmpdir = pip_tmpdir(registry.pip_tmpdir, s.work_dir)
    try:
        if tmpdir is not None:
            tmpdir.mkdir(parents=True, exist_ok=True)
        pypiserver.start()
        await pypiserver.wait_ready(path="/simple/")
        contenders = {
            "baseline": (f"{pypiserver.base_url}/simple/", pypiserver),
            "subject": (f"{url}/simple/", s.gateway),
        }
        dest = s.work_dir / "downloads"
        print("  (o) warming up …", flush=True)
        for index, server in contenders.values():
            await _pip_run(index, dest, names, expected, server, tmpdir=tmpdir)
        for n in range(params.rounds):
            # B S S B, then S B B S: neither side always runs on the warmer machine.
            first, second = ("baseline", "subject") if n % 2 == 0 else ("subject", "baseline")
            runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "subject": []}
            for who in (first, second, second, first):
                index, server = contenders[who]
                runs[who].append(
                    await _pip_run(index, dest, names, expected, server, tmpdir=tmpdir)
                )
            row = pip_round_row(runs, len(names))
            details.append(row)
            ours, base = row["subject"], row["baseline"]
            print(
                f"  (o) round {n + 1}: ours {ours['runs_s']}s (gateway CPU "
                f"{ours['server_cpu_s']}s, pip CPU {ours['pip_cpu_s']}s), pypiserver "
                f"{base['runs_s']}s (CPU {base['server_cpu_s']}s, pip CPU {base['pip_cpu_s']}s)",
                flush=True,
            )
    finally:
        pypiserver.stop()
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
    return pip_figure(
        details,
        context={
            "wheels": len(paths),
            "wheel_bytes": sum(p.stat().st_size for p in paths),
            "client": "pip download --no-deps --no-cache-dir -d <tmp> -i <index> <50 names>",
            "requests_per_wheel": "ours 3 (index, PEP 658 metadata, file), pypiserver 2",
            "repository": "public (anonymous reads), filesystem blob store",
            "pip_tmpdir": "system default" if tmpdir is None else str(tmpdir),
            "cpu_count": os.cpu_count(),
        },
    )


# ---- (p) upload -> scanned -> downloadable ----------------------------------------------------
def upload_form(spec: WheelSpec, content: bytes) -> tuple[bytes, str]:
    """The legacy upload form as twine posts it."""
    boundary = uuid.uuid4().hex
    fields = {
        ":action": "file_upload",
        "protocol_version": "1",
        "name": spec.name,
        "version": spec.version,
        "filetype": "bdist_wheel",
        "pyversion": "py3",
        "metadata_version": "2.1",
        "sha256_digest": hashlib.sha256(content).hexdigest(),
    }
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="content"; '
        f'filename="{spec.filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
        + content
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def basic_auth(token: str) -> str:
    return "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode()


class Releases:
    """``artifact.scanned`` and ``artifact.quarantine-released`` as they pass on the bus
    (a plain subscription: the bench only listens)."""

    def __init__(self) -> None:
        self.scanned: dict[str, str] = {}
        self._released: dict[str, asyncio.Event] = {}

    def released(self, artifact_id: str) -> asyncio.Event:
        return self._released.setdefault(artifact_id, asyncio.Event())

    async def on_message(self, msg: Msg) -> None:
        try:
            payload = decode_event(msg.data, sequence=0).payload
        except (msgspec.DecodeError, msgspec.ValidationError, UnknownEventType):
            return
        if isinstance(payload, ArtifactScanned):
            self.scanned[payload.id] = payload.verdict
        elif isinstance(payload, ArtifactQuarantineReleased):
            self.released(payload.id).set()


async def _released_sample(
    s: Stack, releases: Releases, url: str, spec: WheelSpec, *, wait: float
) -> float:
    """Seconds from the upload's start to the first 200 on its file URL."""
    content = wheel_bytes(spec)
    body, content_type = upload_form(spec, content)
    headers = {"Content-Type": content_type, "Authorization": basic_auth(BOOTSTRAP_TOKEN)}
    started = time.monotonic()
    async with s.http.post(f"{url}/", data=body, headers=headers) as r:
        answer = await r.json(content_type=None)
        if r.status != 200:
            raise HarnessError(f"the upload of {spec.filename} answered {r.status}: {answer}")
    artifact_id = str(answer["id"])
    if not answer.get("quarantined", False):
        raise HarnessError(f"{spec.filename} was not quarantined on upload: {answer}")
    try:
        await asyncio.wait_for(releases.released(artifact_id).wait(), timeout=wait)
    except TimeoutError:
        verdict = releases.scanned.get(artifact_id)
        if verdict is None:
            raise HarnessError(
                f"no artifact.scanned nor artifact.quarantine-released for {spec.filename} "
                f"within {wait:g}s of its upload to a quarantine_new repository: scan on upload "
                "is not in this build (branch scanup), so nothing releases the file"
            ) from None
        raise HarnessError(
            f"{spec.filename} was scanned ({verdict}) but not released within {wait:g}s"
        ) from None
    sha256 = str(answer["digest"]).removeprefix("sha256:")
    file_url = f"{url}/files/{sha256}/{spec.filename}"
    deadline = started + wait
    while True:
        async with s.http.get(file_url) as r:
            await r.read()
            if r.status == 200:
                return time.monotonic() - started
            if r.status != 451 or time.monotonic() > deadline:
                raise HarnessError(f"{file_url} answered {r.status} after its release")
        await asyncio.sleep(0.002)


async def _quarantine_figure(s: Stack, infra: Infra, registry: RegistryParameters) -> report.Figure:
    slug = await s.new_repository("pypi", quarantine_new=True)
    url = s.pypi_url(slug)
    releases = Releases()
    settings = load_settings({}, nats_url=infra.nats_url, stream_name=BENCH_STREAM, service="bench")
    bus = await Bus.connect(settings, name="gatehouse-bench-registry")
    try:
        # A scan on upload looks the package up in the vulnerability database: not an empty one.
        print(
            f"  (p) importing the OSV advisories ({registry.advisories} synthetic, and the "
            "real ones when ../shared/data/osv is there) …",
            flush=True,
        )
        loaded = await load_advisories(bus, registry.advisories)
    finally:
        await bus.close()
    nc = await nats.connect(infra.nats_url, name="gatehouse-bench-registry")
    try:
        await nc.subscribe("artifact.>", cb=releases.on_message)
        await nc.flush()
        print("  (p) warming up (is there a scan on upload?) …", flush=True)
        run = uuid.uuid4().hex[:6]
        for n in range(3):
            spec = WheelSpec(name=f"gh-bench-q{run}-warm-{n}", version="1.0.0")
            await _released_sample(s, releases, url, spec, wait=SCAN_WAIT_SECONDS)
        samples = []
        for n in range(registry.uploads):
            spec = WheelSpec(name=f"gh-bench-q{run}-{n:04d}", version="1.0.0")
            samples.append(await _released_sample(s, releases, url, spec, wait=SCAN_WAIT_SECONDS))
    finally:
        await nc.close()
    summary = report.summarize_latencies(samples)
    print(
        f"  (p) {summary.count} uploads: p50 {summary.p50_ms:.0f} ms, p99 {summary.p99_ms:.0f} ms",
        flush=True,
    )
    return report.measured(
        "quarantine_release",
        QUARANTINE_TITLE,
        subject=msgspec.structs.asdict(summary),
        targets=quarantine_targets(summary.p99_ms),
        context={
            "uploads": len(samples),
            "upload": "multipart POST of a small wheel (the form twine posts), one at a time",
            "clock": "upload's first byte -> artifact.quarantine-released on the bus -> "
            "first 200 on the file URL (time.monotonic)",
            "advisories_loaded": {"real": loaded["real"], "synthetic": loaded["synthetic"]},
        },
    )


# ---- (q) streaming ----------------------------------------------------------------------------
def stream_baseline_process(infra: Infra, folder: Path) -> ChildProcess:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
    env.update(
        {"BENCH_STREAM_PORT": str(port), "BENCH_STREAM_DIR": str(folder), "PYTHONUNBUFFERED": "1"}
    )
    return ChildProcess(
        label="stream baseline app",
        argv=[sys.executable, "-m", "tests.bench.stream_baseline_app"],
        env=env,
        port=port,
        log_path=infra.work_dir / "stream-baseline.log",
    )


@dataclass(frozen=True)
class Content:
    """``size`` bytes made of one random MiB, each chunk stamped with the round and its
    index (so no two rounds, and no two chunks, are the same bytes)."""

    size: int
    tag: int
    block: bytes

    def chunks(self) -> list[int]:
        return list(range(0, self.size, STREAM_CHUNK_BYTES))

    def chunk(self, offset: int) -> bytes:
        length = min(STREAM_CHUNK_BYTES, self.size - offset)
        stamp = self.tag.to_bytes(8, "big") + offset.to_bytes(8, "big")
        return (stamp + self.block[16:])[:length]

    def sha256(self) -> str:
        digest = hashlib.sha256()
        for offset in self.chunks():
            digest.update(self.chunk(offset))
        return digest.hexdigest()

    async def stream(self) -> AsyncIterator[bytes]:
        for offset in self.chunks():
            yield self.chunk(offset)


class RssWatch:
    """The largest ``VmRSS`` of ``pid`` while the block runs, against the one before."""

    def __init__(self, pid: int | None) -> None:
        if pid is None:
            raise HarnessError("the process to watch is not running")
        self.pid = pid
        self.before_kib = 0
        self.peak_kib = 0
        self._task: asyncio.Task[None] | None = None

    def _read(self) -> int:
        kib = memory_kib(self.pid).get("VmRSS")
        if kib is None:
            raise HarnessError(f"cannot read /proc/{self.pid}/status (the process exited?)")
        return kib

    async def _sample(self) -> None:
        while True:
            self.peak_kib = max(self.peak_kib, self._read())
            await asyncio.sleep(RSS_SAMPLE_SECONDS)

    async def __aenter__(self) -> RssWatch:
        self.before_kib = self.peak_kib = self._read()
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self.peak_kib = max(self.peak_kib, self._read())

    @property
    def growth_mib(self) -> float:
        return (self.peak_kib - self.before_kib) / 1024


def hwm_kib(pid: int | None) -> int | None:
    return memory_kib(pid).get("VmHWM")


@dataclass
class Transfer:
    put_url: str
    get_url: str
    headers: dict[str, str]
    process: ChildProcess


async def _transfer(s: Stack, content: Content, sha256: str, target: Transfer) -> dict[str, Any]:
    headers = {
        **target.headers,
        "Content-Type": "application/octet-stream",
        "Content-Length": str(content.size),
        "X-Checksum-Sha256": sha256,
    }
    started = time.monotonic()
    async with RssWatch(target.process.pid) as up_rss:
        async with s.http.put(target.put_url, data=content.stream(), headers=headers) as r:
            answer = await r.text()
            if r.status not in (200, 201):
                raise HarnessError(f"PUT {target.put_url} answered {r.status}: {answer[:300]}")
    uploaded = time.monotonic()
    received = 0
    async with RssWatch(target.process.pid) as down_rss:
        async with s.http.get(target.get_url, headers=target.headers) as r:
            if r.status != 200:
                raise HarnessError(f"GET {target.get_url} answered {r.status}")
            etag = r.headers.get("ETag", "").strip('"')
            async for chunk in r.content.iter_chunked(STREAM_CHUNK_BYTES):
                received += len(chunk)
    downloaded = time.monotonic()
    if received != content.size:
        raise HarnessError(f"GET {target.get_url} sent {received} of {content.size} bytes")
    if target.process is s.gateway and etag != sha256:
        raise HarnessError(f"the gateway's ETag {etag!r} is not the content's sha256 {sha256}")
    async with s.http.delete(target.put_url, headers=target.headers) as r:
        if r.status not in (200, 204):
            raise HarnessError(f"DELETE {target.put_url} answered {r.status}")
    up_s, down_s = uploaded - started, downloaded - uploaded
    return {
        "upload_s": round(up_s, 3),
        "download_s": round(down_s, 3),
        "upload_mib_s": round(content.size / MIB / up_s, 1),
        "download_mib_s": round(content.size / MIB / down_s, 1),
        "mib_per_second": round(2 * content.size / MIB / (up_s + down_s), 1),
        "rss_before_mib": round(up_rss.before_kib / 1024, 1),
        "upload_rss_growth_mib": round(up_rss.growth_mib, 1),
        "download_rss_growth_mib": round(down_rss.growth_mib, 1),
        "rss_growth_mib": round(max(up_rss.growth_mib, down_rss.growth_mib), 1),
    }


async def _stream_figure(
    s: Stack, infra: Infra, params: BenchParameters, registry: RegistryParameters
) -> report.Figure:
    slug = await s.new_repository("generic")
    folder = s.work_dir / "stream-baseline"
    baseline = stream_baseline_process(infra, folder)
    block = os.urandom(STREAM_CHUNK_BYTES)

    def gateway_target(name: str) -> Transfer:
        url = f"{s.base}/generic/{s.project}/{slug}/{name}"
        return Transfer(put_url=url, get_url=url, headers=AUTH, process=s.gateway)

    def baseline_target(name: str) -> Transfer:
        url = f"{baseline.base_url}/blob/{name}"
        return Transfer(put_url=url, get_url=url, headers={}, process=baseline)

    targets = {"subject": gateway_target, "baseline": baseline_target}
    try:
        baseline.start()
        await baseline.wait_ready()
        print("  (q) warming up …", flush=True)
        warm = Content(size=8 * MIB, tag=0, block=block)
        warm_sha = warm.sha256()
        for who, make in targets.items():
            await _transfer(s, warm, warm_sha, make(f"warm-{who}.bin"))
        hwm_before = hwm_kib(s.gateway.pid)
        details: list[dict[str, Any]] = []
        for n in range(registry.stream_rounds):
            content = Content(size=registry.stream_bytes, tag=n + 1, block=block)
            sha256 = await asyncio.to_thread(content.sha256)
            order = ["baseline", "subject"] if n % 2 == 0 else ["subject", "baseline"]
            row: dict[str, Any] = {}
            for who in order:
                row[who] = await _transfer(s, content, sha256, targets[who](f"round-{n}.bin"))
            details.append(row)
            ours, bare = row["subject"], row["baseline"]
            print(
                f"  (q) round {n + 1}: ours up {ours['upload_s']:.1f}s down "
                f"{ours['download_s']:.1f}s, RSS +{ours['rss_growth_mib']:.1f} MiB; bare up "
                f"{bare['upload_s']:.1f}s down {bare['download_s']:.1f}s, RSS "
                f"+{bare['rss_growth_mib']:.1f} MiB",
                flush=True,
            )
        hwm_after = hwm_kib(s.gateway.pid)
    finally:
        baseline.stop()
    growth = max(d["subject"]["rss_growth_mib"] for d in details)
    subject = [d["subject"]["mib_per_second"] for d in details]
    bare = [d["baseline"]["mib_per_second"] for d in details]
    ratio = report.paired_ratio(subject, bare)
    return report.measured(
        "streaming",
        STREAM_TITLE,
        subject={
            "rss_growth_mib": growth,
            "mib_per_second": round(report.median(subject), 1),
            "upload_mib_s": report.median([d["subject"]["upload_mib_s"] for d in details]),
            "download_mib_s": report.median([d["subject"]["download_mib_s"] for d in details]),
        },
        baseline={
            "rss_growth_mib": max(d["baseline"]["rss_growth_mib"] for d in details),
            "mib_per_second": round(report.median(bare), 1),
            "upload_mib_s": report.median([d["baseline"]["upload_mib_s"] for d in details]),
            "download_mib_s": report.median([d["baseline"]["download_mib_s"] for d in details]),
        },
        baseline_description="bare aiohttp app streaming the body to a file (writes in a "
        "thread, no hashing) and serving it with web.FileResponse, same client",
        ratio_value=ratio,
        ratio_meaning="ours / bare app MiB per second, upload + download (reported; the "
        "target is the RSS bound)",
        targets=stream_targets(growth),
        rounds=details,
        context={
            "bytes": registry.stream_bytes,
            "rss": f"VmRSS of the gateway process sampled every {RSS_SAMPLE_SECONDS * 1000:g} "
            "ms during each transfer, minus VmRSS just before it",
            "gateway_vmhwm_mib": None
            if hwm_before is None or hwm_after is None
            else {"before": round(hwm_before / 1024, 1), "after": round(hwm_after / 1024, 1)},
            "store": "filesystem blob store (staged, fsynced, linked)",
        },
    )


def main() -> None:
    defaults = BenchParameters()
    reg = RegistryParameters()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=FIGURES, action="append", help="measure these figures")
    parser.add_argument("--rounds", type=int, default=defaults.rounds)
    parser.add_argument("--wheels", type=int, default=reg.wheels)
    parser.add_argument(
        "--pip-tmpdir",
        default=reg.pip_tmpdir,
        help="pip's TMPDIR: auto (tmpfs when there is one), '' (system default) or a path",
    )
    parser.add_argument("--uploads", type=int, default=reg.uploads)
    parser.add_argument("--advisories", type=int, default=reg.advisories)
    parser.add_argument("--stream-mib", type=int, default=reg.stream_bytes // MIB)
    parser.add_argument("--stream-rounds", type=int, default=reg.stream_rounds)
    args = parser.parse_args()
    configure_logging(service="bench", level="error")
    params = BenchParameters(rounds=args.rounds)
    registry = RegistryParameters(
        wheels=args.wheels,
        pip_tmpdir=args.pip_tmpdir,
        uploads=args.uploads,
        advisories=args.advisories,
        stream_bytes=args.stream_mib * MIB,
        stream_rounds=args.stream_rounds,
    )
    figures = tuple(args.only) if args.only else FIGURES
    started = time.monotonic()
    infra = Infra.start()
    try:
        measured = asyncio.run(measure_registry(infra, params, registry, figures=figures))
        asyncio.run(infra.drop_databases())
    finally:
        infra.stop()
    print(msgspec.json.format(msgspec.json.encode(measured), indent=2).decode())
    print(f"wall {time.monotonic() - started:.1f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
