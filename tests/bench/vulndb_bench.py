"""Vulnerability database figures: import times and the scanner's memory with 100k advisories.

    .venv/bin/python -m tests.bench.vulndb_bench [--synthetic 100000]

Runs the scanner as a child process (``gatehouse serve scanner``) against its own NATS and
PostgreSQL (embedded unless GATEHOUSE_NATS_URL / GATEHOUSE_DATABASE_URL say otherwise) and
drives it over NATS as the CLI does (blob put, then ``svc.scanner.vulndb_import``):

1. the real PyPI + Go advisories of ../shared/data/osv, as one zip;
2. a synthetic bundle (``tests.bench.synthetic_osv``) on top, 100,000 advisories by default;
3. the same synthetic bundle again (everything unchanged: the incremental path);
4. a synthetic EPSS file the size of FIRST's daily one (gzip, 270,000 CVEs by default);
5. a restart: time until ready (the database loaded from the tables into memory).

Each import time runs from the RPC request to its answer, i.e. read, validate, publish, the
projection's transaction and the in-memory matcher's refresh; the blob upload is timed
apart. Memory is the scanner process's VmHWM (peak RSS) and VmRSS from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import random
import time
from pathlib import Path
from typing import Any

import msgspec

from contracts.rpc.scanner_vulndb import (
    IMPORT_EPSS,
    IMPORT_OSV,
    IMPORT_TIMEOUT_SECONDS,
    SERVICE,
    EpssImportRequest,
    ImportSummary,
    OsvImportRequest,
)
from shared.blobs import BlobStore
from shared.bus import Bus
from shared.logging import configure_logging
from shared.rpc import CallContext, call
from shared.settings import load_settings
from tests.bench import synthetic_osv
from tests.bench.harness import BENCH_STREAM, ChildProcess, Infra, service_process

SHARED_OSV = Path(__file__).resolve().parents[3] / "shared" / "data" / "osv"
CTX = CallContext(request_id="bench", actor="bench", roles=("ADMIN",))


def memory_kib(pid: int | None) -> dict[str, int]:
    """VmHWM (peak) and VmRSS of a process in KiB, from /proc."""
    found: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                found[key] = int(value.split()[0])
    except OSError:
        pass
    return found


def epss_file(count: int, *, seed: int = 3) -> bytes:
    """A gzipped EPSS file in FIRST's format with ``count`` CVEs."""
    rng = random.Random(seed)
    lines = [
        "#model_version:v2023.03.01,score_date:2024-05-02T00:00:00+0000",
        "cve,epss,percentile",
    ]
    for i in range(count):
        lines.append(f"CVE-{1999 + i % 26}-{10000 + i},{rng.random():.5f},{rng.random():.5f}")
    return gzip.compress(("\n".join(lines) + "\n").encode(), compresslevel=6)


async def _import(
    bus: Bus, blobs: BlobStore, data: bytes, name: str, *, epss: bool = False
) -> dict[str, Any]:
    started = time.perf_counter()
    digest = await blobs.put(data)
    stored = time.perf_counter()
    request: msgspec.Struct = (
        EpssImportRequest(digest=digest, name=name)
        if epss
        else OsvImportRequest(digest=digest, name=name)
    )
    summary = await call(
        bus,
        SERVICE,
        IMPORT_EPSS if epss else IMPORT_OSV,
        request,
        ImportSummary,
        ctx=CTX,
        timeout=IMPORT_TIMEOUT_SECONDS,
    )
    done = time.perf_counter()
    return {
        "name": name,
        "bytes": len(data),
        "blob_put_seconds": round(stored - started, 2),
        "import_seconds": round(done - stored, 2),
        "counts": {
            "added": summary.counts.added,
            "updated": summary.counts.updated,
            "withdrawn": summary.counts.withdrawn,
            "unchanged": summary.counts.unchanged,
            "rejected": summary.counts.rejected,
        },
    }


async def measure(infra: Infra, synthetic: int, epss: int = 270_000) -> dict[str, Any]:
    await infra.reset_stream(BENCH_STREAM)
    database_url = await infra.fresh_database("vulndb")
    scanner: ChildProcess = service_process(infra, "scanner", database_url=database_url)
    settings = load_settings(
        {}, nats_url=infra.nats_url, database_url=database_url, stream_name=BENCH_STREAM
    )
    result: dict[str, Any] = {"imports": []}
    scanner.start()
    try:
        await scanner.wait_ready()
        result["rss_empty_kib"] = memory_kib(scanner.pid)
        bus = await Bus.connect(settings, name="bench-vulndb")
        try:
            blobs = await BlobStore.open(bus)
            if SHARED_OSV.is_dir():
                real = await asyncio.to_thread(synthetic_osv.folder_bundle, SHARED_OSV)
                result["imports"].append(await _import(bus, blobs, real, "real PyPI+Go"))
                result["rss_after_real_kib"] = memory_kib(scanner.pid)
            made = time.perf_counter()
            bundle = await asyncio.to_thread(
                synthetic_osv.bundle, synthetic_osv.advisories(synthetic)
            )
            result["synthetic_build_seconds"] = round(time.perf_counter() - made, 2)
            name = f"synthetic {synthetic}"
            result["imports"].append(await _import(bus, blobs, bundle, name))
            result["rss_after_synthetic_kib"] = memory_kib(scanner.pid)
            result["imports"].append(await _import(bus, blobs, bundle, name + " again"))
            result["rss_after_reimport_kib"] = memory_kib(scanner.pid)
            del bundle
            scores = await asyncio.to_thread(epss_file, epss)
            result["imports"].append(
                await _import(bus, blobs, scores, f"EPSS {epss} (gzip)", epss=True)
            )
            result["rss_after_epss_kib"] = memory_kib(scanner.pid)
        finally:
            await bus.close()
        scanner.stop()
        restarted = time.perf_counter()
        scanner.start()
        await scanner.wait_ready()
        result["restart_ready_seconds"] = round(time.perf_counter() - restarted, 2)
        result["rss_after_restart_kib"] = memory_kib(scanner.pid)
    finally:
        scanner.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--synthetic", type=int, default=100_000)
    parser.add_argument("--epss", type=int, default=270_000)
    args = parser.parse_args()
    configure_logging(service="bench", level="error")
    infra = Infra.start()
    try:
        result = asyncio.run(measure(infra, args.synthetic, args.epss))
        asyncio.run(infra.drop_databases())
    finally:
        infra.stop()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
