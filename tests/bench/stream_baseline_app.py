"""The baseline of the streaming figure (q): a bare aiohttp app that streams bodies to files.

``PUT /blob/{name}`` writes the request body to ``<dir>/<name>`` chunk by chunk (the writes in
a worker thread, as the gateway's blob store does; no hashing, no auth, no metadata);
``GET /blob/{name}`` answers it with ``web.FileResponse`` (sendfile); ``DELETE`` removes it.
The floor for moving the same bytes through an aiohttp process on this machine.

Run by the bench as ``python -m tests.bench.stream_baseline_app`` with
``BENCH_STREAM_PORT`` and ``BENCH_STREAM_DIR`` set.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from pathlib import Path

from aiohttp import web

DIR_KEY = web.AppKey("dir", Path)
CHUNK_BYTES = 256 * 1024
BATCH_BYTES = 1024 * 1024
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


def _path(request: web.Request) -> Path:
    name = request.match_info["name"]
    if not _NAME.match(name) or name.startswith("."):
        raise web.HTTPBadRequest(text="bad name")
    return request.app[DIR_KEY] / name


async def put_blob(request: web.Request) -> web.Response:
    path = _path(request)
    out = await asyncio.to_thread(path.open, "wb")
    size = 0
    try:
        batch: list[bytes] = []
        batched = 0
        async for chunk in request.content.iter_chunked(CHUNK_BYTES):
            batch.append(chunk)
            batched += len(chunk)
            if batched >= BATCH_BYTES:
                await asyncio.to_thread(out.write, b"".join(batch))
                size += batched
                batch, batched = [], 0
        if batch:
            await asyncio.to_thread(out.write, b"".join(batch))
            size += batched
    finally:
        await asyncio.to_thread(out.close)
    return web.json_response({"size": size}, status=201)


async def get_blob(request: web.Request) -> web.StreamResponse:
    path = _path(request)
    if not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path)


async def delete_blob(request: web.Request) -> web.Response:
    with contextlib.suppress(FileNotFoundError):
        _path(request).unlink()
    return web.Response(status=204)


async def ready(_: web.Request) -> web.Response:
    return web.Response(body=b'{"status":"ok"}', content_type="application/json")


def build_app(directory: Path) -> web.Application:
    directory.mkdir(parents=True, exist_ok=True)
    app = web.Application(client_max_size=1024**4)
    app[DIR_KEY] = directory
    app.router.add_put("/blob/{name}", put_blob)
    app.router.add_get("/blob/{name}", get_blob)
    app.router.add_delete("/blob/{name}", delete_blob)
    app.router.add_get("/health/ready", ready)
    return app


def main() -> None:
    web.run_app(
        build_app(Path(os.environ["BENCH_STREAM_DIR"])),
        host="127.0.0.1",
        port=int(os.environ["BENCH_STREAM_PORT"]),
        access_log=None,
        print=None,
    )


if __name__ == "__main__":
    main()
