"""The artifact registry, on a gateway and a scanner of their own (child processes) sharing
one artifact blob directory:

(o) ``pip_download``: 50 small wheels (``tests.bench.wheels``: real, installable) uploaded
    with ``twine`` to a public pypi repository, then ``pip download --no-deps
    --no-cache-dir -d <tmp> -i <index> <the 50 names>`` — a real pip subprocess, the same
    flags for both — against the gateway's simple index and against ``pypiserver`` serving
    the same files from a folder on this machine. After a warm-up of each, every round runs
    pip four times, B S S B (then S B B S); the ratio is the median over the rounds of ours
    / pypiserver's wheels per second; target >= 1.0. pip's TMPDIR is on tmpfs for both
    (``registry_pip.pip_tmpdir`` says why). pip asks three things per wheel of ours (index,
    PEP 658 metadata, file) and two of pypiserver's (index, file).
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
        [--rounds 3] [--wheels 50] [--pip-rounds N] [--pip-tmpdir auto] [--uploads 100]
        [--advisories 10000] [--stream-mib 2048] [--stream-rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack

import aiohttp
import msgspec

from shared.logging import configure_logging
from tests.bench import report
from tests.bench.harness import (
    BENCH_STREAM,
    HarnessError,
    Infra,
    service_available,
    service_process,
)
from tests.bench.registry_common import (
    CLIENT_TIMEOUT_SECONDS,
    FIGURES,
    MIB,
    RegistryParameters,
    Stack,
    unmeasured,
)
from tests.bench.registry_pip import pip_download_figure
from tests.bench.registry_quarantine import quarantine_figure
from tests.bench.registry_stream import stream_figure
from tests.bench.scenarios import MEASUREMENT_ERRORS, BenchParameters, describe


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
            "pip": lambda: pip_download_figure(s, infra, params, registry),
            "quarantine": lambda: quarantine_figure(s, infra, registry),
            "streaming": lambda: stream_figure(s, infra, params, registry),
        }
        out = []
        for name in figures:
            try:
                out.append(await measure[name]())
            except MEASUREMENT_ERRORS as exc:
                out.append(unmeasured(name, describe(exc)[:2000]))
        return out


def main() -> None:
    defaults = BenchParameters()
    reg = RegistryParameters()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=FIGURES, action="append", help="measure these figures")
    parser.add_argument("--rounds", type=int, default=defaults.rounds)
    parser.add_argument("--wheels", type=int, default=reg.wheels)
    parser.add_argument("--pip-rounds", type=int, help="(o)'s rounds; default: 2 x --rounds")
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
        pip_rounds=args.pip_rounds,
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
