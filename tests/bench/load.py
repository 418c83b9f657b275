"""Load generators: a closed-loop HTTP client and raw JetStream publishers.

Every loop is bounded twice, by a deadline and by a count, so a run always ends.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import aiohttp
from nats.js import JetStreamContext

REQUEST_TIMEOUT_SECONDS = 10.0


@dataclass
class HttpRun:
    elapsed_seconds: float
    latencies: list[float] = field(default_factory=list)  # successful requests only, seconds
    statuses: Counter[int] = field(default_factory=Counter)  # 0 = transport error
    errors: int = 0

    @property
    def completed(self) -> int:
        return len(self.latencies)


async def closed_loop(
    session: aiohttp.ClientSession,
    *,
    urls: Sequence[str],
    headers: dict[str, str],
    connections: int,
    duration: float,
    max_requests: int,
    ok_status: int = 200,
) -> HttpRun:
    """``connections`` workers each send one request at a time, back to back, cycling over
    ``urls``, until ``duration`` seconds pass or ``max_requests`` were sent. Throughput is
    completed requests over the time until the last one finished."""
    url_cycle = itertools.cycle(urls)
    budget = itertools.count()
    run = HttpRun(elapsed_seconds=0.0)
    started = time.perf_counter()
    deadline = started + duration

    async def worker() -> None:
        while time.perf_counter() < deadline and next(budget) < max_requests:
            url = next(url_cycle)
            t0 = time.perf_counter()
            try:
                async with session.get(url, headers=headers) as response:
                    await response.read()
                    status = response.status
            except (TimeoutError, aiohttp.ClientError):
                status = 0
            run.statuses[status] += 1
            if status == ok_status:
                run.latencies.append(time.perf_counter() - t0)
            else:
                run.errors += 1

    await asyncio.gather(*(worker() for _ in range(connections)))
    run.elapsed_seconds = time.perf_counter() - started
    return run


def client_session(connections: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections)
    return aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
    )


@dataclass(frozen=True)
class PublishRun:
    published: int
    elapsed_seconds: float


# Each message: (subject, payload, Nats-Msg-Id).
Message = tuple[str, bytes, str]


async def publish_one_by_one(
    js: JetStreamContext,
    messages: Callable[[], Message],
    *,
    stream: str,
    duration: float,
    max_count: int,
) -> PublishRun:
    """``js.publish`` awaited one message at a time: each waits for the stream's ack."""
    started = time.perf_counter()
    deadline = started + duration
    count = 0
    while count < max_count and time.perf_counter() < deadline:
        subject, payload, msg_id = messages()
        await js.publish(subject, payload, stream=stream, headers={"Nats-Msg-Id": msg_id})
        count += 1
    return PublishRun(published=count, elapsed_seconds=time.perf_counter() - started)


async def publish_pipelined(
    js: JetStreamContext,
    messages: Callable[[], Message],
    *,
    stream: str,
    count: int,
    ack_within: float,
) -> PublishRun:
    """``js.publish_async`` with up to the client's pending limit in flight, then wait for
    every ack. Context only: the service publishes one acked event at a time."""
    started = time.perf_counter()
    futures = []
    for _ in range(count):
        subject, payload, msg_id = messages()
        futures.append(
            await js.publish_async(
                subject,
                payload,
                stream=stream,
                headers={"Nats-Msg-Id": msg_id},
                wait_stall=ack_within,
            )
        )
    await asyncio.wait_for(asyncio.gather(*futures), ack_within)
    return PublishRun(published=count, elapsed_seconds=time.perf_counter() - started)
