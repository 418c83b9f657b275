"""(q) a 2 GiB generic upload and download through the gateway while its RSS is watched,
against a bare aiohttp app streaming to a file (see ``tests.bench.registry_bench``)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.embedded import free_port
from tests.bench import report
from tests.bench.harness import (
    ChildProcess,
    HarnessError,
    Infra,
)
from tests.bench.registry_common import (
    AUTH,
    MIB,
    RSS_SAMPLE_SECONDS,
    STREAM_CHUNK_BYTES,
    STREAM_TITLE,
    RegistryParameters,
    Stack,
    stream_targets,
)
from tests.bench.scenarios import BenchParameters
from tests.bench.vulndb_bench import memory_kib


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


async def stream_figure(
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
