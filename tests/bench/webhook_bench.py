"""Webhook fan-out, on a webhook-fanout service of its own (a child process) and local aiohttp
receivers in another process (``tests.bench.webhook_receiver_app``):

(l) ``webhook_throughput``: 10,000 events fanned out to 10 subscriptions (100,000 signed
    Standard Webhooks deliveries), from the first publish (pipelined ``publish_async``
    straight to JetStream) to the last receipt, vs a bare aiohttp client POSTing the same
    100,000 bodies (with headers of the same size) to the same receiver, 10 in flight: one
    per subscription, as delivery in order implies. Interleaved rounds; the ratio is ours /
    bare (deliveries per second); target >= 0.5.
(m) ``webhook_latency``: event published -> receiver got it, at a steady 200 events/s for
    ``--latency-seconds`` to ``--latency-subscriptions`` subscriptions; p50/p99 over the
    rounds without a hanging receiver; target p99 <= 50 ms.
(n) ``webhook_isolation``: the same load with one more subscription whose receiver hangs 15 s
    on every request (a port of its own: another host to the sender); the other
    subscriptions' p99 with / without it, rounds interleaved (without, with, …); median of the
    paired ratios; target <= 1.10.

Subscriptions are made the real way: ``webhook_create`` over NATS request/reply (what the
gateway's ``POST /api/admin/webhooks`` calls) with a known secret.

    .venv/bin/python -m tests.bench.webhook_bench [--only throughput|latency] [--rounds 3]
        [--events 10000] [--latency-seconds 15] [--latency-subscriptions 3]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import sys
import time
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec

from contracts.envelope import encode_envelope
from contracts.rpc import webhooks as rpc
from services.webhook_fanout.deliveries.outcomes import delivery_id
from shared.bus import Bus
from shared.embedded import free_port
from shared.logging import configure_logging
from shared.rpc import CallContext, call
from shared.settings import load_settings
from tests.bench import report
from tests.bench.harness import (
    BENCH_STREAM,
    ChildProcess,
    HarnessError,
    Infra,
    service_available,
    service_process,
)
from tests.bench.scenarios import MEASUREMENT_ERRORS, BenchParameters, describe
from tests.integration.audit_support import project_created

THROUGHPUT_TITLE = (
    "(l) webhook fan-out: 10,000 events x 10 subscriptions -> local receiver, "
    "vs a bare aiohttp client, 10 in flight"
)
LATENCY_TITLE = "(m) webhook latency: event published -> receiver got it, steady 200 events/s"
ISOLATION_TITLE = "(n) webhook isolation: others' p99 with / without a receiver hanging 15 s"
THROUGHPUT_RATIO_MIN = 0.5
LATENCY_P99_MS_MAX = 50.0
ISOLATION_RATIO_MAX = 1.10
SUBSCRIPTIONS = 10
EVENT_TYPES = ["project.*"]
SECRET = "whsec_" + base64.b64encode(b"gatehouse-bench-webhook-secret!!").decode()
FAKE_SIGNATURE = "v1," + base64.b64encode(b"\0" * 32).decode()
RATE_PER_SECOND = 200.0
WAIT_SECONDS = 300.0
POLL_SECONDS = 0.02
PUBLISH_WINDOW = 2000  # publish_async acks outstanding at most
CTX = CallContext(request_id="bench-webhooks", actor="apikey:bench", roles=("admin",))
FIGURES = ("throughput", "latency")


def throughput_targets(ratio: float | None = None) -> list[report.Target]:
    return [
        report.check(
            "deliveries/s vs bare aiohttp client",
            op=">=",
            threshold=THROUGHPUT_RATIO_MIN,
            actual=ratio,
            unit="x",
        )
    ]


def latency_targets(p99_ms: float | None = None) -> list[report.Target]:
    return [report.check("p99", op="<=", threshold=LATENCY_P99_MS_MAX, actual=p99_ms, unit="ms")]


def isolation_targets(ratio: float | None = None) -> list[report.Target]:
    return [
        report.check(
            "others' p99 with / without the hanging receiver",
            op="<=",
            threshold=ISOLATION_RATIO_MAX,
            actual=ratio,
            unit="x",
        )
    ]


def _unmeasured(figures: tuple[str, ...], reason: str) -> list[report.Figure]:
    out: list[report.Figure] = []
    if "throughput" in figures:
        out.append(
            report.not_measured(
                "webhook_throughput",
                THROUGHPUT_TITLE,
                reason=reason,
                targets=throughput_targets(),
            )
        )
    if "latency" in figures:
        out += [
            report.not_measured(
                "webhook_latency", LATENCY_TITLE, reason=reason, targets=latency_targets()
            ),
            report.not_measured(
                "webhook_isolation", ISOLATION_TITLE, reason=reason, targets=isolation_targets()
            ),
        ]
    return out


@dataclass
class WebhookParameters:
    events: int = 10_000
    latency_seconds: float = 15.0
    # 600 deliveries/s: a third of what the fan-out sustains on the 2-core bench machine.
    latency_subscriptions: int = 3


async def measure_webhooks(
    infra: Infra,
    params: BenchParameters | None = None,
    hooks: WebhookParameters | None = None,
    *,
    figures: tuple[str, ...] = FIGURES,
) -> list[report.Figure]:
    """Figures (l) ("throughput") and (m)+(n) ("latency"); a failure leaves them "not
    measured" with the reason."""
    params = params or BenchParameters()
    hooks = hooks or WebhookParameters()
    try:
        missing = service_available("webhook-fanout")
        if missing:
            raise HarnessError(missing)
        return await _measure(infra, params, hooks, figures)
    except MEASUREMENT_ERRORS as exc:
        return _unmeasured(figures, describe(exc)[:2000])


def receiver_process(infra: Infra) -> ChildProcess:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
    env.update(
        {
            "BENCH_RECEIVER_PORT": str(port),
            "BENCH_HANG_PORT": str(free_port()),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return ChildProcess(
        label="webhook receiver",
        argv=[sys.executable, "-m", "tests.bench.webhook_receiver_app"],
        env=env,
        port=port,
        log_path=infra.work_dir / "webhook-receiver.log",
    )


@dataclass
class Stack:
    http: aiohttp.ClientSession
    bus: Bus
    receiver: ChildProcess
    fanout: ChildProcess

    @property
    def hang_url(self) -> str:
        return f"http://127.0.0.1:{self.receiver.env['BENCH_HANG_PORT']}/hang"

    def hook_url(self, name: str) -> str:
        return f"{self.receiver.base_url}/hook/{name}"

    async def stats(self) -> dict[str, Any]:
        async with self.http.get(self.receiver.base_url + "/stats") as response:
            return dict(await response.json())

    async def control(self, what: str) -> None:
        async with self.http.post(f"{self.receiver.base_url}/{what}") as response:
            response.raise_for_status()

    async def receipts(self) -> tuple[list[str], list[float]]:
        async with self.http.get(self.receiver.base_url + "/receipts") as response:
            data = await response.json()
        return list(data["ids"]), list(data["times"])

    async def wait_count(self, count: int, *, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            stats = await self.stats()
            if stats["count"] >= count:
                return stats
            if time.monotonic() > deadline:
                raise HarnessError(
                    f"{what}: {stats['count']} of {count} received within {WAIT_SECONDS:g}s; "
                    f"fan-out log tail:\n{self.fanout.log_tail()}"
                )
            await asyncio.sleep(POLL_SECONDS)

    async def subscribe(self, url: str) -> str:
        reply = await call(
            self.bus,
            rpc.SERVICE,
            rpc.WEBHOOK_CREATE,
            rpc.WebhookCreateRequest(
                body=rpc.WebhookBody(url=url, events=EVENT_TYPES, secret=SECRET)
            ),
            rpc.WebhookSecretReply,
            ctx=CTX,
            timeout=30,
        )
        return reply.webhook.id

    async def unsubscribe(self, webhook_id: str) -> None:
        await call(
            self.bus,
            rpc.SERVICE,
            rpc.WEBHOOK_DELETE,
            rpc.WebhookRequest(id=webhook_id),
            rpc.WebhookView,
            ctx=CTX,
            timeout=30,
        )


async def _measure(
    infra: Infra, params: BenchParameters, hooks: WebhookParameters, figures: tuple[str, ...]
) -> list[report.Figure]:
    await infra.reset_stream(BENCH_STREAM)
    database_url = await infra.fresh_database("webhooks")
    async with AsyncExitStack() as stack:
        receiver = receiver_process(infra)
        fanout = service_process(infra, "webhook-fanout", database_url=database_url)
        fanout.env["GATEHOUSE_OUTBOUND_ALLOW_CIDRS"] = "127.0.0.0/8"
        for process in (receiver, fanout):
            stack.callback(process.stop)
            process.start()
            await process.wait_ready()
        settings = load_settings(
            {}, nats_url=infra.nats_url, stream_name=BENCH_STREAM, service="bench"
        )
        bus = await Bus.connect(settings, name="gatehouse-bench-webhooks")
        stack.push_async_callback(bus.close)
        http = await stack.enter_async_context(
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        )
        s = Stack(http=http, bus=bus, receiver=receiver, fanout=fanout)
        out: list[report.Figure] = []
        if "throughput" in figures:
            out.append(await _throughput(s, params, hooks))
        if "latency" in figures:
            out += await _latency(s, params, hooks)
        return out


# ---- (l) throughput --------------------------------------------------------------------------
def _bodies(count: int) -> list[tuple[str, bytes]]:
    envelopes = [project_created() for _ in range(count)]
    return [(e.id, encode_envelope(e)) for e in envelopes]


async def _publish(bus: Bus, bodies: list[tuple[str, bytes]]) -> None:
    pending: list[asyncio.Future[Any]] = []
    for event_id, body in bodies:
        pending.append(
            await bus.js.publish_async(
                "project.created", body, stream=bus.stream, headers={"Nats-Msg-Id": event_id}
            )
        )
        if len(pending) >= PUBLISH_WINDOW:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)


async def _subject_round(s: Stack, events: int, subscriptions: int) -> dict[str, Any]:
    bodies = _bodies(events)
    await s.control("reset")
    cpu_before = s.fanout.cpu_seconds()
    started = time.monotonic()
    await _publish(s.bus, bodies)
    published = time.monotonic() - started
    stats = await s.wait_count(events * subscriptions, what="fan-out")
    elapsed = float(stats["last_at"]) - started
    cpu_after = s.fanout.cpu_seconds()
    return {
        "seconds": round(elapsed, 3),
        "per_second": round(report.rate(events * subscriptions, elapsed), 1),
        "publish_seconds": round(published, 3),
        "received": stats["count"],
        "service_cpu_s": None
        if cpu_before is None or cpu_after is None
        else round(cpu_after - cpu_before, 2),
    }


async def _baseline_round(s: Stack, events: int, subscriptions: int) -> dict[str, Any]:
    bodies = [body for _, body in _bodies(events)]
    await s.control("reset")
    connector = aiohttp.TCPConnector(limit=subscriptions)
    async with aiohttp.ClientSession(connector=connector) as client:

        async def one_receiver(name: str) -> None:
            url = s.hook_url(name)
            for body in bodies:
                headers = {
                    "Content-Type": "application/json",
                    "webhook-id": str(uuid.uuid4()),
                    "webhook-timestamp": str(int(time.time())),
                    "webhook-signature": FAKE_SIGNATURE,
                }
                async with client.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        raise HarnessError(f"the receiver answered {response.status}")

        started = time.monotonic()
        await asyncio.gather(*(one_receiver(f"bare-{n}") for n in range(subscriptions)))
    stats = await s.wait_count(events * subscriptions, what="bare client")
    elapsed = float(stats["last_at"]) - started
    return {
        "seconds": round(elapsed, 3),
        "per_second": round(report.rate(events * subscriptions, elapsed), 1),
    }


async def _throughput(s: Stack, params: BenchParameters, hooks: WebhookParameters) -> report.Figure:
    ids = [await s.subscribe(s.hook_url(f"sub-{n}")) for n in range(SUBSCRIPTIONS)]
    print("  (l) warming up …", flush=True)
    await _subject_round(s, 200, SUBSCRIPTIONS)
    details: list[dict[str, Any]] = []
    for n in range(params.rounds):
        base = await _baseline_round(s, hooks.events, SUBSCRIPTIONS)
        ours = await _subject_round(s, hooks.events, SUBSCRIPTIONS)
        details.append({"baseline": base, "subject": ours})
        print(
            f"  (l) round {n + 1}: ours {ours['per_second']:.0f}/s ({ours['seconds']:.1f}s, "
            f"service CPU {ours['service_cpu_s']}s), bare {base['per_second']:.0f}/s "
            f"({base['seconds']:.1f}s)",
            flush=True,
        )
    for webhook_id in ids:
        await s.unsubscribe(webhook_id)
    subject = [d["subject"]["per_second"] for d in details]
    baseline = [d["baseline"]["per_second"] for d in details]
    ratio = report.paired_ratio(subject, baseline)
    return report.measured(
        "webhook_throughput",
        THROUGHPUT_TITLE,
        subject={"deliveries_per_second": round(report.median(subject), 1)},
        baseline={"deliveries_per_second": round(report.median(baseline), 1)},
        baseline_description="bare aiohttp client, the same bodies (and headers of the same "
        "size) to the same receiver process, 10 requests in flight",
        ratio_value=ratio,
        ratio_meaning="ours / bare client deliveries per second (higher is better)",
        targets=throughput_targets(ratio),
        rounds=details,
        context={
            "events": hooks.events,
            "subscriptions": SUBSCRIPTIONS,
            "format": "standard (HMAC-SHA256 signed)",
            "clock": "first publish -> last receipt at the receiver (time.monotonic)",
            "cpu_count": os.cpu_count(),
        },
    )


# ---- (m) latency and (n) isolation ----------------------------------------------------------
async def _steady_round(
    s: Stack, subscriptions: list[str], seconds: float
) -> tuple[list[float], dict[str, Any]]:
    """Publish at RATE_PER_SECOND for ``seconds``; the subscriptions' latencies (seconds)."""
    count = int(RATE_PER_SECOND * seconds)
    bodies = _bodies(count)
    expected = {
        str(delivery_id(sid, event_id)): event_id for sid in subscriptions for event_id, _ in bodies
    }
    await s.control("reset")
    published: dict[str, float] = {}
    pending: list[asyncio.Future[Any]] = []
    started = time.monotonic()
    for n, (event_id, body) in enumerate(bodies):
        delay = started + n / RATE_PER_SECOND - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        published[event_id] = time.monotonic()
        pending.append(
            await s.bus.js.publish_async(
                "project.created", body, stream=s.bus.stream, headers={"Nats-Msg-Id": event_id}
            )
        )
    await asyncio.gather(*pending)
    behind = time.monotonic() - (started + (count - 1) / RATE_PER_SECOND)
    await s.wait_count(len(expected), what="steady load")
    ids, times = await s.receipts()
    first: dict[str, float] = {}
    for delivery, at in zip(ids, times, strict=True):
        if delivery in expected and delivery not in first:
            first[delivery] = at
    missing = len(expected) - len(first)
    if missing:
        raise HarnessError(f"{missing} deliveries of the steady load never arrived")
    latencies = [at - published[expected[d]] for d, at in first.items()]
    summary = report.summarize_latencies(latencies)
    return latencies, {
        "events": count,
        "deliveries": len(latencies),
        "p50_ms": summary.p50_ms,
        "p99_ms": summary.p99_ms,
        "max_ms": summary.max_ms,
        "publisher_behind_s": round(behind, 3),
    }


async def _latency(
    s: Stack, params: BenchParameters, hooks: WebhookParameters
) -> list[report.Figure]:
    subscriptions = [
        await s.subscribe(s.hook_url(f"steady-{n}")) for n in range(hooks.latency_subscriptions)
    ]
    print("  (m) warming up …", flush=True)
    await _steady_round(s, subscriptions, 1.0)
    quiet: list[float] = []
    rounds: list[dict[str, Any]] = []
    for n in range(params.rounds):
        latencies, without = await _steady_round(s, subscriptions, hooks.latency_seconds)
        quiet += latencies
        hanging = await s.subscribe(s.hang_url)
        _, with_hang = await _steady_round(s, subscriptions, hooks.latency_seconds)
        stats = await s.stats()
        with_hang["hanging_requests"] = stats["hung_total"]
        await s.unsubscribe(hanging)
        await s.control("release")
        rounds.append({"without": without, "with_hanging": with_hang})
        print(
            f"  (m/n) round {n + 1}: without p50 {without['p50_ms']:.1f} ms p99 "
            f"{without['p99_ms']:.1f} ms; with a hanging receiver p50 "
            f"{with_hang['p50_ms']:.1f} ms p99 {with_hang['p99_ms']:.1f} ms "
            f"({with_hang['hanging_requests']} requests hung so far)",
            flush=True,
        )
    summary = report.summarize_latencies(quiet)
    context = {
        "rate_per_second": RATE_PER_SECOND,
        "seconds_per_round": hooks.latency_seconds,
        "subscriptions": hooks.latency_subscriptions,
        "deliveries_per_second": RATE_PER_SECOND * hooks.latency_subscriptions,
        "clock": "time.monotonic before publish_async -> receipt at the receiver",
    }
    latency = report.measured(
        "webhook_latency",
        LATENCY_TITLE,
        subject=msgspec.structs.asdict(summary),
        targets=latency_targets(summary.p99_ms),
        rounds=[r["without"] for r in rounds],
        context=context,
    )
    with_p99 = [r["with_hanging"]["p99_ms"] for r in rounds]
    without_p99 = [r["without"]["p99_ms"] for r in rounds]
    ratio = report.paired_ratio(with_p99, without_p99)
    isolation = report.measured(
        "webhook_isolation",
        ISOLATION_TITLE,
        subject={"p99_ms": report.median(with_p99)},
        baseline={"p99_ms": report.median(without_p99)},
        baseline_description="the same subscriptions and load without the hanging receiver "
        "(rounds interleaved: without, with, …)",
        ratio_value=ratio,
        ratio_meaning="others' p99 with / without the hanging receiver (lower is better)",
        targets=isolation_targets(ratio),
        rounds=rounds,
        context={**context, "hanging_receiver": "answers after 15 s (the client's timeout)"},
    )
    return [latency, isolation]


def main() -> None:
    defaults = BenchParameters()
    hook_defaults = WebhookParameters()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=FIGURES, help="measure one group of figures")
    parser.add_argument("--rounds", type=int, default=defaults.rounds)
    parser.add_argument("--events", type=int, default=hook_defaults.events)
    parser.add_argument("--latency-seconds", type=float, default=hook_defaults.latency_seconds)
    parser.add_argument(
        "--latency-subscriptions", type=int, default=hook_defaults.latency_subscriptions
    )
    args = parser.parse_args()
    configure_logging(service="bench", level="error")
    params = BenchParameters(rounds=args.rounds)
    hooks = WebhookParameters(
        events=args.events,
        latency_seconds=args.latency_seconds,
        latency_subscriptions=args.latency_subscriptions,
    )
    figures = (args.only,) if args.only else FIGURES
    started = time.monotonic()
    infra = Infra.start()
    try:
        measured = asyncio.run(measure_webhooks(infra, params, hooks, figures=figures))
        asyncio.run(infra.drop_databases())
    finally:
        infra.stop()
    print(msgspec.json.format(msgspec.json.encode(measured), indent=2).decode())
    print(f"wall {time.monotonic() - started:.1f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
