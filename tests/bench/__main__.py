"""``make bench``: measure the gateway, the audit service and the scanner against same-run
baselines.

    python -m tests.bench [--duration S] [--rounds N] [--out bench-report.json] [--strict]

Starts its own NATS and PostgreSQL (or uses GATEHOUSE_NATS_URL / GATEHOUSE_DATABASE_URL),
runs the services as child processes, writes ``bench-report.json`` at the repository root and
prints a summary. Exits 0 once the report is written; ``--strict`` exits 1 unless every figure
was measured and met its target.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from shared.logging import configure_logging
from tests.bench import report
from tests.bench.gate_bench import measure_gate
from tests.bench.harness import ROOT, Infra
from tests.bench.registry_bench import measure_registry
from tests.bench.scan_bench import measure_scan
from tests.bench.scenarios import BenchParameters, measure_audit, measure_gateway
from tests.bench.signature_bench import measure_signatures
from tests.bench.webhook_bench import measure_webhooks


def _git_commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() or "unknown"


def _loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def environment(infra: Infra) -> dict[str, Any]:
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "git_commit": _git_commit(),
        "loadavg_start": _loadavg(),
        "embedded_infra": infra.embedded,
    }


async def run(params: BenchParameters, infra: Infra) -> list[report.Figure]:
    """(a) and (c) share one gateway run; (b), (d)+(e)+(f), (g)+(h), (i)+(j)+(k),
    (l)+(m)+(n) and (o)+(p)+(q) need the stream to themselves. Reported a to q."""
    try:
        print("measuring (a) gateway reads and (c) write -> audit visibility …", flush=True)
        read, visibility = await measure_gateway(infra, params)
        print("measuring (b) audit projection throughput …", flush=True)
        projection = await measure_audit(infra, params)
        print(
            "measuring (d) a 10,000-component SBOM scan against 100,000 advisories and "
            "(e) re-matching 100 projects, (f) the scanner's memory …",
            flush=True,
        )
        scanner_figures = await measure_scan(infra, rounds=params.rounds)
        print(
            "measuring (g) decision reads and (h) scan/triage -> decision readable …",
            flush=True,
        )
        gate_figures = await measure_gate(infra, params)
        print(
            "measuring (i) cold verification of 1,000 signed commits vs git log %G? with "
            "GnuPG, (j) key upload -> backfill and (k) the commits listing …",
            flush=True,
        )
        signature_figures = await measure_signatures(infra, params)
        print(
            "measuring (l) webhook fan-out of 10,000 events x 10 subscriptions vs a bare "
            "aiohttp client, (m) latency at 200 events/s and (n) isolation from a hanging "
            "receiver …",
            flush=True,
        )
        webhook_figures = await measure_webhooks(infra, params)
        print(
            "measuring (o) pip download of 50 wheels vs pypiserver, (p) upload -> scanned -> "
            "downloadable in a quarantine_new repository and (q) a 2 GiB generic upload and "
            "download against the gateway's RSS …",
            flush=True,
        )
        registry_figures = await measure_registry(infra, params)
    finally:
        await infra.drop_databases()
    return [
        read,
        projection,
        visibility,
        *scanner_figures,
        *gate_figures,
        *signature_figures,
        *webhook_figures,
        *registry_figures,
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = BenchParameters()
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=defaults.duration,
        help="seconds per measured run (default %(default)s)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=defaults.rounds,
        help="interleaved baseline/subject rounds (default %(default)s)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "bench-report.json",
        help="where the JSON report goes (default %(default)s)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 unless every figure was measured and passed"
    )
    return parser.parse_args(argv)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.duration <= 0 or args.rounds < 1:
        print("--duration must be positive and --rounds at least 1", file=sys.stderr)
        return 2
    # The kit logs a reconnect warning whenever the bench closes a connection: not news here.
    configure_logging(service="bench", level="error")
    # SIGTERM unwinds like Ctrl-C, so the children are stopped and the temp folder removed.
    signal.signal(signal.SIGTERM, _interrupt)
    params = BenchParameters(duration=args.duration, rounds=args.rounds)
    started = time.monotonic()
    infra = Infra.start()
    try:
        env = environment(infra)
        figures = asyncio.run(run(params, infra))
    except KeyboardInterrupt:
        print("interrupted: no report written", file=sys.stderr)
        return 130
    finally:
        infra.stop()
    env["loadavg_end"] = _loadavg()
    env["wall_seconds"] = round(time.monotonic() - started, 1)
    built = report.build_report(figures, environment=env, parameters=params.as_dict())
    args.out.write_bytes(report.encode_report(built))
    print()
    print(report.render_summary(built))
    print(f"\nreport written to {args.out}")
    if args.strict and not built.passed:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
