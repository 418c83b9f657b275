"""A stand-in GitHub REST API: an aiohttp server on a random local port that keeps check
runs and issue comments in memory and records every call.

It serves what the release gate calls (check runs, issue comments) and checks the headers
GitHub requires. Faults are scripted per call: ``fail_next(n, status)`` answers the next
``n`` calls with a server error; ``rate_limit_next(...)`` answers the next call as GitHub's
primary (403 + ``X-RateLimit-Remaining: 0`` + ``X-RateLimit-Reset``) or secondary /
abuse limit (429 + ``Retry-After``) would.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TOKEN = "ghs_standin_token_0123456789"
JSON_BODY = web.RequestKey("json_body", object)


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class StandInGithub:
    token: str = TOKEN
    calls: list[Call] = field(default_factory=list)
    check_runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)
    _faults: list[Callable[[], web.Response]] = field(default_factory=list)
    _exhaust_in: float | None = None
    _fail_after: int = 0
    _fail_after_on: tuple[str, str] = ("", "")
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1001))
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> StandInGithub:
        app = web.Application(middlewares=[self._record])
        app.router.add_post("/repos/{owner}/{repo}/check-runs", self._create_check_run)
        app.router.add_patch("/repos/{owner}/{repo}/check-runs/{id}", self._update_check_run)
        app.router.add_get("/repos/{owner}/{repo}/commits/{ref}/check-runs", self._list_check_runs)
        app.router.add_get("/repos/{owner}/{repo}/issues/{number}/comments", self._list_comments)
        app.router.add_post("/repos/{owner}/{repo}/issues/{number}/comments", self._create_comment)
        app.router.add_patch("/repos/{owner}/{repo}/issues/comments/{id}", self._update_comment)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # ---- scripting ---------------------------------------------------------------------------
    def fail_next(self, count: int, *, status: int = 502) -> None:
        for _ in range(count):
            self._faults.append(
                lambda: web.json_response({"message": "Server Error"}, status=status)
            )

    def fail_after_next(self, count: int, *, method: str = "", path_contains: str = "") -> None:
        """The next ``count`` calls (of ``method``, whose path contains ``path_contains``)
        are carried out, then answered with a server error (as when GitHub times out behind
        its load balancer after acting)."""
        self._fail_after += count
        self._fail_after_on = (method, path_contains)

    def rate_limit_next(self, *, primary: bool, seconds: float = 1.0) -> None:
        def limited() -> web.Response:
            if primary:
                reset = int(time.time() + seconds) + 1
                headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)}
                return web.json_response(
                    {"message": "API rate limit exceeded"}, status=403, headers=headers
                )
            return web.json_response(
                {"message": "You have exceeded a secondary rate limit"},
                status=429,
                headers={"Retry-After": str(int(seconds))},
            )

        self._faults.append(limited)

    def announce_exhausted(self, *, reset_in: float) -> None:
        """The next successful answer says the limit is used up until ``reset_in`` seconds."""
        self._exhaust_in = reset_in

    # ---- views for assertions ----------------------------------------------------------------
    def writes(self) -> list[Call]:
        return [c for c in self.calls if c.method in ("POST", "PATCH")]

    def comments_on(self, repo: str, number: int) -> list[dict[str, Any]]:
        return [c for c in self.comments.values() if c["repo"] == repo and c["number"] == number]

    def check_runs_on(self, repo: str, sha: str) -> list[dict[str, Any]]:
        return [r for r in self.check_runs.values() if r["repo"] == repo and r["head_sha"] == sha]

    # ---- the API -----------------------------------------------------------------------------
    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        self.calls.append(
            Call(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers=dict(request.headers),
                body=body,
            )
        )
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"message": "Bad credentials"}, status=401)
        if request.headers.get("Accept") != "application/vnd.github+json" or (
            request.headers.get("X-GitHub-Api-Version") != "2022-11-28"
        ):
            return web.json_response({"message": "Unsupported headers"}, status=400)
        if self._faults:
            return self._faults.pop(0)()
        request[JSON_BODY] = body
        response: web.StreamResponse = await handler(request)
        method, path_contains = self._fail_after_on
        if (
            self._fail_after
            and request.method == (method or request.method)
            and path_contains in request.path
        ):
            self._fail_after -= 1
            return web.json_response({"message": "Server Error"}, status=502)
        if self._exhaust_in is not None:
            response.headers["X-RateLimit-Remaining"] = "0"
            response.headers["X-RateLimit-Reset"] = str(int(time.time() + self._exhaust_in))
            self._exhaust_in = None
        return response

    @staticmethod
    def _repo(request: web.Request) -> str:
        return f"{request.match_info['owner']}/{request.match_info['repo']}"

    async def _create_check_run(self, request: web.Request) -> web.Response:
        run = {**request[JSON_BODY], "id": next(self._ids), "repo": self._repo(request)}
        self.check_runs[run["id"]] = run
        return web.json_response(run, status=201)

    async def _update_check_run(self, request: web.Request) -> web.Response:
        run = self.check_runs.get(int(request.match_info["id"]))
        if run is None:
            return web.json_response({"message": "Not Found"}, status=404)
        run.update(request[JSON_BODY])
        return web.json_response(run)

    async def _list_check_runs(self, request: web.Request) -> web.Response:
        runs = [
            r
            for r in self.check_runs_on(self._repo(request), request.match_info["ref"])
            if r.get("name") == request.query.get("check_name", r.get("name"))
        ]
        return web.json_response(
            {"total_count": len(runs), "check_runs": [{"id": r["id"]} for r in runs]}
        )

    async def _list_comments(self, request: web.Request) -> web.Response:
        found = self.comments_on(self._repo(request), int(request.match_info["number"]))
        page, per_page = int(request.query.get("page", "1")), int(request.query["per_page"])
        chosen = sorted(found, key=lambda c: c["id"])[(page - 1) * per_page : page * per_page]
        return web.json_response([{"id": c["id"], "body": c["body"]} for c in chosen])

    async def _create_comment(self, request: web.Request) -> web.Response:
        comment = {
            "id": next(self._ids),
            "body": request[JSON_BODY]["body"],
            "repo": self._repo(request),
            "number": int(request.match_info["number"]),
        }
        self.comments[comment["id"]] = comment
        return web.json_response(comment, status=201)

    async def _update_comment(self, request: web.Request) -> web.Response:
        comment = self.comments.get(int(request.match_info["id"]))
        if comment is None:
            return web.json_response({"message": "Not Found"}, status=404)
        comment["body"] = request[JSON_BODY]["body"]
        return web.json_response(comment)
