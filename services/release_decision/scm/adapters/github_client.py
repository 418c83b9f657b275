"""A small GitHub REST client: the calls the release gate makes (check runs, issue comments).

* Base URL and token from settings; ``Accept: application/vnd.github+json`` and
  ``X-GitHub-Api-Version: 2022-11-28`` on every call.
* Rate limits: a 429, or a 403 saying the limit is exhausted (``X-RateLimit-Remaining: 0``)
  or carrying ``Retry-After``, waits as GitHub asks (``Retry-After`` seconds, else until
  ``X-RateLimit-Reset``) and tries again; a response announcing ``X-RateLimit-Remaining: 0``
  holds the next call back until the reset. A wait longer than ``max_wait`` is not slept
  through: the call fails as transient and the job comes back later.
* 5xx answers, timeouts and connection errors are retried with backoff, then fail as
  transient; any other 4xx fails as permanent, with GitHub's status.
* A call that is not idempotent (creating a comment) is retried only when GitHub cannot
  have acted on it (no connection, a rate-limit refusal): after a 5xx or a timeout the
  comment may exist, and a second POST would duplicate it. It fails as transient instead,
  and the job's next attempt looks for the comment (by its marker) before creating one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgspec

from services.release_decision.scm.metrics import GITHUB_CALLS, GITHUB_RATE_LIMITED
from shared.errors import GatehouseError
from shared.logging import get_logger

log = get_logger(__name__)

API_VERSION = "2022-11-28"
BACKOFF_SECONDS = (0.2, 0.5, 1.0, 2.0)
MAX_WAIT_SECONDS = 60.0
TIMEOUT_SECONDS = 10.0


class GithubError(GatehouseError):
    code, status, title = "github_failed", 502, "GitHub refused the call"

    def __init__(self, detail: str, *, github_status: int | None = None, transient: bool) -> None:
        super().__init__(detail)
        self.github_status = github_status
        self.transient = transient


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any
    headers: dict[str, str]


def rate_limit_wait(status: int, headers: dict[str, str], *, now: float) -> float | None:
    """Seconds GitHub asks us to wait before calling again, or None (not rate-limited)."""
    limited = status == 429 or (
        status == 403
        and (headers.get("retry-after") or headers.get("x-ratelimit-remaining") == "0")
    )
    if not limited:
        return None
    retry_after = _number(headers.get("retry-after"))
    if retry_after is not None:
        return max(retry_after, 0.0)
    reset = _number(headers.get("x-ratelimit-reset"))
    if reset is not None:
        return max(reset - now, 0.0)
    return 60.0  # GitHub's advice for a secondary limit without headers


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


@dataclass
class GithubClient:
    base_url: str
    token: str
    session: aiohttp.ClientSession
    backoff: Sequence[float] = BACKOFF_SECONDS
    max_wait: float = MAX_WAIT_SECONDS
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: Callable[[], float] = time.time
    # Epoch seconds before which no call is made (the limit was announced exhausted).
    _hold_until: float = field(default=0.0, init=False)

    @property
    def configured(self) -> bool:
        return bool(self.token)

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        idempotent: bool = True,
    ) -> Reply:
        url = self.base_url.rstrip("/") + path
        data = msgspec.json.encode(json) if json is not None else None
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "Authorization": f"Bearer {self.token}",
            "User-Agent": "gatehouse-release-gate",
        }
        if data is not None:
            headers["Content-Type"] = "application/json"
        failures = 0
        while True:
            await self._respect_hold()
            try:
                async with self.session.request(
                    method,
                    url,
                    data=data,
                    params=params,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS),
                ) as resp:
                    raw = await resp.read()
                    reply = Reply(
                        status=resp.status,
                        body=_decode(raw),
                        headers={k.lower(): v for k, v in resp.headers.items()},
                    )
            except (aiohttp.ClientError, TimeoutError) as exc:
                GITHUB_CALLS.labels(method, "error").inc()
                failures += 1
                what = f"{method} {path}: {type(exc).__name__} {exc}"
                if not idempotent and not isinstance(exc, aiohttp.ClientConnectorError):
                    raise GithubError(what, transient=True) from exc
                await self._back_off(failures, what)
                continue
            GITHUB_CALLS.labels(method, str(reply.status)).inc()
            self._note_remaining(reply.headers)
            wait = rate_limit_wait(reply.status, reply.headers, now=self.clock())
            if wait is not None:
                GITHUB_RATE_LIMITED.inc()
                if wait > self.max_wait:
                    raise GithubError(
                        f"{method} {path}: rate-limited for {wait:.0f}s",
                        github_status=reply.status,
                        transient=True,
                    )
                log.info("github_rate_limited", path=path, wait=round(wait, 2))
                await self.sleep(wait)
                continue
            if reply.status >= 500:
                failures += 1
                what = f"{method} {path}: GitHub answered {reply.status}"
                if not idempotent:
                    raise GithubError(what, github_status=reply.status, transient=True)
                await self._back_off(failures, what)
                continue
            if reply.status >= 400:
                raise GithubError(
                    f"{method} {path}: GitHub answered {reply.status} "
                    f"{_message(reply.body)}".strip(),
                    github_status=reply.status,
                    transient=False,
                )
            return reply

    async def _back_off(self, failures: int, what: str) -> None:
        if failures > len(self.backoff):
            raise GithubError(what, transient=True)
        delay = self.backoff[failures - 1]
        log.info("github_retry", what=what, delay=delay)
        await self.sleep(delay)

    def _note_remaining(self, headers: dict[str, str]) -> None:
        if headers.get("x-ratelimit-remaining") == "0":
            reset = _number(headers.get("x-ratelimit-reset"))
            if reset is not None:
                self._hold_until = max(self._hold_until, reset)

    async def _respect_hold(self) -> None:
        wait = self._hold_until - self.clock()
        if wait <= 0:
            return
        if wait > self.max_wait:
            raise GithubError(f"rate limit exhausted for {wait:.0f}s", transient=True)
        log.info("github_rate_limit_hold", wait=round(wait, 2))
        await self.sleep(wait)

    # ---- the calls the release gate makes --------------------------------------------------
    async def create_check_run(self, repo: str, body: Any) -> int:
        # Not retried after a 5xx or a timeout: GitHub may have made it (the job's next
        # attempt finds it with find_check_run instead of making a second one).
        reply = await self.call("POST", f"/repos/{repo}/check-runs", json=body, idempotent=False)
        return int(reply.body["id"])

    async def find_check_run(self, repo: str, head_sha: str, name: str) -> int | None:
        """The newest check run called ``name`` on ``head_sha``, if GitHub has one."""
        reply = await self.call(
            "GET",
            f"/repos/{repo}/commits/{head_sha}/check-runs",
            params={"check_name": name, "filter": "latest", "per_page": "100"},
        )
        body = reply.body if isinstance(reply.body, dict) else {}
        runs = [r for r in body.get("check_runs", []) if isinstance(r, dict) and "id" in r]
        return max((int(r["id"]) for r in runs), default=None)

    async def update_check_run(self, repo: str, check_run_id: int, body: Any) -> int:
        reply = await self.call("PATCH", f"/repos/{repo}/check-runs/{check_run_id}", json=body)
        return int(reply.body["id"])

    async def issue_comments(self, repo: str, number: int) -> list[dict[str, Any]]:
        """Every comment of the pull request (pages of 100)."""
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            reply = await self.call(
                "GET",
                f"/repos/{repo}/issues/{number}/comments",
                params={"per_page": "100", "page": str(page)},
            )
            batch = reply.body if isinstance(reply.body, list) else []
            found.extend(c for c in batch if isinstance(c, dict))
            if len(batch) < 100:
                return found
            page += 1

    async def create_comment(self, repo: str, number: int, body: str) -> int:
        reply = await self.call(
            "POST",
            f"/repos/{repo}/issues/{number}/comments",
            json={"body": body},
            idempotent=False,
        )
        return int(reply.body["id"])

    async def update_comment(self, repo: str, comment_id: int, body: str) -> int:
        reply = await self.call(
            "PATCH", f"/repos/{repo}/issues/comments/{comment_id}", json={"body": body}
        )
        return int(reply.body["id"])


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return raw[:500].decode("utf-8", "replace")


def _message(body: Any) -> str:
    if isinstance(body, dict):
        return str(body.get("message", ""))[:200]
    return ""
