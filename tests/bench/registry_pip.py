"""(o) ``pip download`` of 50 wheels through the gateway's simple index against
``pypiserver`` serving the same files (see ``tests.bench.registry_bench``)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from shared.embedded import free_port
from tests.bench import report
from tests.bench.harness import (
    BOOTSTRAP_TOKEN,
    ChildProcess,
    HarnessError,
    Infra,
)
from tests.bench.registry_common import (
    PIP_TITLE,
    RegistryParameters,
    Stack,
    pip_targets,
    run_client,
    unmeasured,
)
from tests.bench.scenarios import BenchParameters
from tests.bench.wheels import bench_specs, write_wheels


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


async def pip_download_figure(
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
        rounds = registry.pip_rounds or 2 * params.rounds
        for n in range(rounds):
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
            "pip_tmpdir_why": "pip makes a temporary folder per file it fetches (3 per wheel "
            "of ours, 1 of pypiserver's): ~0.07 ms each on tmpfs, ~0.9 ms on this VM's ext4 "
            "mounted with discard, where they, not the servers, would make the figure",
            "cpu_count": os.cpu_count(),
        },
    )
