"""The baseline for the commits-listing figure: a bare aiohttp app that answers each request by
running ``git log -30 --format=…`` as a subprocess on the mirror.

``GET /commits?page=&per_page=&author=&sha=`` runs ``git log -<per_page> --skip=<…>
[--author=<…> -i] [<sha>]`` with a format carrying what a listing entry shows (sha, author
name, e-mail and date, the message), splits the output into entries and encodes them with
msgspec. No auth, no middleware, no verification join: the floor of "ask git per request".

Run by the bench as ``python -m tests.bench.git_log_app`` with ``BENCH_GITLOG_MIRROR`` (the
bare repository) and ``BENCH_BASELINE_PORT``.
"""

from __future__ import annotations

import asyncio
import os

import msgspec
from aiohttp import web

MIRROR_KEY = web.AppKey("mirror", str)
# Fields split by US (0x1f), entries by RS (0x1e): neither appears in a commit message git made.
FORMAT = "--format=%H%x1f%an%x1f%ae%x1f%aI%x1f%B%x1e"
_encode = msgspec.json.Encoder().encode


def parse(output: bytes) -> list[dict[str, object]]:
    entries: list[dict[str, object]] = []
    for chunk in output.decode("utf-8", "replace").split("\x1e"):
        fields = chunk.strip("\n").split("\x1f")
        if len(fields) != 5:
            continue
        sha, name, email, date, message = fields
        subject, _, body = message.partition("\n")
        entries.append(
            {
                "sha": sha,
                "short_sha": sha[:7],
                "subject": subject,
                "body": body.strip(),
                "author": {"name": name, "email": email, "date": date},
            }
        )
    return entries


async def list_commits(request: web.Request) -> web.Response:
    query = request.query
    per_page = int(query.get("per_page", "30"))
    page = int(query.get("page", "1"))
    argv = ["git", "-C", request.app[MIRROR_KEY], "log", f"-{per_page}"]
    argv += [f"--skip={(page - 1) * per_page}", FORMAT]
    if "author" in query:
        argv += [f"--author={query['author']}", "--regexp-ignore-case"]
    if "sha" in query:
        argv.append(query["sha"])
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        return web.Response(status=500, body=b'{"detail":"git log failed"}')
    return web.Response(body=_encode(parse(output)), content_type="application/json")


async def ready(_: web.Request) -> web.Response:
    return web.Response(body=b'{"status":"ok"}', content_type="application/json")


def build_app(mirror: str) -> web.Application:
    app = web.Application()
    app[MIRROR_KEY] = mirror
    app.router.add_get("/commits", list_commits)
    app.router.add_get("/health/ready", ready)
    return app


def main() -> None:
    web.run_app(
        build_app(os.environ["BENCH_GITLOG_MIRROR"]),
        host="127.0.0.1",
        port=int(os.environ["BENCH_BASELINE_PORT"]),
        access_log=None,
        print=None,
    )


if __name__ == "__main__":
    main()
