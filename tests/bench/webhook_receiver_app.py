"""The webhook bench's receivers, a process of their own (``python -m
tests.bench.webhook_receiver_app``), so that receiving costs the service under test nothing
but the shared CPUs.

* ``BENCH_RECEIVER_PORT``: ``POST /hook/{name}`` answers 200 at once and records the path,
  the ``webhook-id`` header and when it arrived (``time.monotonic()``: one clock for every
  process of the machine, so the bench can compare it with its publish times).
* ``BENCH_HANG_PORT``: every ``POST`` hangs for ``BENCH_HANG_SECONDS`` (a receiver that never
  answers in time), or until ``POST /release`` on the first port. A port of its own: a
  receiver on another host as far as the sender's per-host connection limit is concerned.
* ``GET /stats``, ``GET /receipts?since=N`` (the records from the N-th on), ``POST /reset``.
"""

from __future__ import annotations

import asyncio
import os
import time

from aiohttp import web

HANG_SECONDS_DEFAULT = 15.0


class Receipts:
    def __init__(self) -> None:
        self.paths: list[str] = []
        self.ids: list[str] = []
        self.times: list[float] = []
        self.hanging = 0
        self.hung_total = 0
        self.release = asyncio.Event()

    def reset(self) -> None:
        self.paths.clear()
        self.ids.clear()
        self.times.clear()


def build(receipts: Receipts, hang_seconds: float) -> tuple[web.Application, web.Application]:
    async def hook(request: web.Request) -> web.Response:
        await request.read()
        receipts.times.append(time.monotonic())
        receipts.paths.append(request.match_info["name"])
        receipts.ids.append(request.headers.get("webhook-id", ""))
        return web.Response(text="ok")

    async def stats(_request: web.Request) -> web.Response:
        return web.json_response(
            {
                "count": len(receipts.times),
                "first_at": receipts.times[0] if receipts.times else None,
                "last_at": max(receipts.times) if receipts.times else None,
                "hanging": receipts.hanging,
                "hung_total": receipts.hung_total,
            }
        )

    async def listing(request: web.Request) -> web.Response:
        since = int(request.query.get("since", "0"))
        return web.json_response(
            {
                "paths": receipts.paths[since:],
                "ids": receipts.ids[since:],
                "times": receipts.times[since:],
            }
        )

    async def reset(_request: web.Request) -> web.Response:
        receipts.reset()
        return web.Response(text="reset")

    async def release(_request: web.Request) -> web.Response:
        receipts.release.set()
        receipts.release = asyncio.Event()
        return web.Response(text="released")

    async def ready(_request: web.Request) -> web.Response:
        return web.Response(text="ready")

    async def hang(request: web.Request) -> web.Response:
        await request.read()
        receipts.hanging += 1
        receipts.hung_total += 1
        try:
            released = receipts.release
            try:
                await asyncio.wait_for(released.wait(), hang_seconds)
            except TimeoutError:
                pass
        finally:
            receipts.hanging -= 1
        return web.Response(status=503, text="late")

    main = web.Application(client_max_size=4 * 1024 * 1024)
    main.router.add_post("/hook/{name}", hook)
    main.router.add_get("/stats", stats)
    main.router.add_get("/receipts", listing)
    main.router.add_post("/reset", reset)
    main.router.add_post("/release", release)
    main.router.add_get("/health/ready", ready)
    hanging = web.Application(client_max_size=4 * 1024 * 1024)
    hanging.router.add_post("/{tail:.*}", hang)
    return main, hanging


async def serve() -> None:
    receipts = Receipts()
    main, hanging = build(
        receipts, float(os.environ.get("BENCH_HANG_SECONDS", HANG_SECONDS_DEFAULT))
    )
    runners = []
    for app, port in (
        (main, int(os.environ["BENCH_RECEIVER_PORT"])),
        (hanging, int(os.environ["BENCH_HANG_PORT"])),
    ):
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
        runners.append(runner)
    try:
        await asyncio.Event().wait()
    finally:
        for runner in runners:
            await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(serve())
