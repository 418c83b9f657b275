"""A write burst through the gateway's HTTP API, as a careful client sends it.

Each write is an :class:`Intent` with a unique key (a project's slug, an API key's name, an
SBOM's commit) and its own ``Idempotency-Key``. A write is *acknowledged* when it got a 2xx;
while a fault lasts, a connection error, a timeout, a 5xx, a 429 or a 409
``idempotency_key_in_progress`` is retried with the same ``Idempotency-Key`` until the
write's deadline, after which it counts as not acknowledged (it may or may not be present).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp

Kind = Literal["project", "apikey", "sbom"]
RETRY_PAUSE_SECONDS = 0.25
ATTEMPT_TIMEOUT_SECONDS = 15.0
# How long one write is retried. Shorter than the gateway's idempotency "in progress" window
# (60 s), so a retry never runs a write a second time; that case is idempotency's own test.
WRITE_DEADLINE_SECONDS = 20.0
RETRYABLE_CONFLICT = "idempotency_key_in_progress"


@dataclass
class Attempt:
    at: float  # seconds since the burst started
    status: int | None  # None: no answer (refused, reset, timed out)
    code: str | None = None


@dataclass
class Intent:
    kind: Kind
    key: str
    idempotency_key: str = field(default_factory=lambda: str(uuid.uuid4()))
    attempts: list[Attempt] = field(default_factory=list)
    acked_at: float | None = None
    ident: str | None = None  # the id the 2xx answered

    @property
    def acknowledged(self) -> bool:
        return self.acked_at is not None

    @property
    def final_status(self) -> int | None:
        return self.attempts[-1].status if self.attempts else None


@dataclass
class Burst:
    """The writes of one fault, tagged so that nothing else can be mistaken for them."""

    tag: str
    project_slug: str  # the project the SBOMs are uploaded to (made before the burst)
    intents: list[Intent]
    started: float = 0.0

    @classmethod
    def plan(cls, tag: str, *, each: int) -> Burst:
        intents: list[Intent] = []
        for i in range(each):
            intents.append(Intent("project", f"{tag}-p{i}"))
            intents.append(Intent("apikey", f"{tag}-k{i}"))
            intents.append(Intent("sbom", os.urandom(20).hex()))
        return cls(tag=tag, project_slug=f"{tag}-base", intents=intents)

    @property
    def repo(self) -> str:
        return f"acme/{self.project_slug}"

    def of(self, kind: Kind) -> list[Intent]:
        return [intent for intent in self.intents if intent.kind == kind]

    def acknowledged(self) -> list[Intent]:
        return [intent for intent in self.intents if intent.acknowledged]

    def failed_attempts(self) -> int:
        return sum(
            1
            for intent in self.intents
            for attempt in intent.attempts
            if attempt.status is None or attempt.status >= 500 or attempt.status == 409
        )

    def server_errors(self) -> int:
        """Answers of 500 (an outage should be a 503, ISSUE 9 §4; counted, then retried)."""
        return sum(1 for i in self.intents for a in i.attempts if a.status == 500)


def sbom_document(component: str) -> bytes:
    return json.dumps(
        {
            "bomFormat": "CycloneDX",
            "specVersion": "1.5",
            "version": 1,
            "components": [
                {"bom-ref": "c", "type": "library", "name": component, "version": "1.0.0"}
            ],
        }
    ).encode()


class Client:
    def __init__(self, session: aiohttp.ClientSession, base: str, token: str) -> None:
        self.session = session
        self.base = base
        self.token = token

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        raw: bytes | None = None,
        media_type: str = "application/json",
        headers: dict[str, str] | None = None,
        timeout: float = ATTEMPT_TIMEOUT_SECONDS,  # noqa: ASYNC109
    ) -> tuple[int, Any]:
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        all_headers = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        if data is not None:
            all_headers["Content-Type"] = media_type
        async with self.session.request(
            method,
            self.base + path,
            data=data,
            headers=all_headers,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            text = await response.read()
            return response.status, json.loads(text) if text else None

    async def get(self, path: str) -> tuple[int, Any]:
        return await self.request("GET", path)

    async def get_until_ok(self, path: str, *, within: float = 60.0) -> Any:
        """A read that must work once the stack is healthy again (retried meanwhile)."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            try:
                status, body = await self.get(path)
                if status == 200:
                    return body
            except (aiohttp.ClientError, TimeoutError):
                status, body = None, None
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"GET {path} never answered 200 (last: {status} {body})")
            await asyncio.sleep(RETRY_PAUSE_SECONDS)

    async def list_all(self, path: str) -> list[dict[str, Any]]:
        """Every item of a cursor-paginated list."""
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            separator = "&" if "?" in path else "?"
            page = path + f"{separator}limit=500" + (f"&cursor={cursor}" if cursor else "")
            body = await self.get_until_ok(page)
            items.extend(body["items"])
            cursor = body.get("next_cursor")
            if not cursor:
                return items


def request_of(burst: Burst, intent: Intent) -> dict[str, Any]:
    if intent.kind == "project":
        return {
            "method": "POST",
            "path": "/api/v1/projects",
            "body": {"slug": intent.key, "name": intent.key, "repos": [f"acme/{intent.key}"]},
        }
    if intent.kind == "apikey":
        return {
            "method": "POST",
            "path": "/api/v1/api-keys",
            "body": {"name": intent.key, "roles": ["VIEWER"]},
        }
    return {
        "method": "POST",
        "path": (
            f"/api/v1/projects/{burst.project_slug}/sboms?repo={burst.repo}&commit={intent.key}"
        ),
        "raw": sbom_document(f"{burst.tag}-{intent.key[:12]}"),
        "media_type": "application/vnd.cyclonedx+json",
    }


def _retryable(status: int, body: Any) -> bool:
    if status >= 500 or status == 429:
        return True
    return status == 409 and isinstance(body, dict) and body.get("code") == RETRYABLE_CONFLICT


async def send(client: Client, burst: Burst, intent: Intent, clock: Callable[[], float]) -> None:
    """One write, retried with its Idempotency-Key while the answer says "try again"."""
    request = request_of(burst, intent)
    deadline = clock() + WRITE_DEADLINE_SECONDS
    while True:
        at = clock()
        try:
            status, body = await client.request(
                **request, headers={"Idempotency-Key": intent.idempotency_key}
            )
        except (aiohttp.ClientError, TimeoutError):
            intent.attempts.append(Attempt(at, None))
        else:
            code = body.get("code") if isinstance(body, dict) else None
            intent.attempts.append(Attempt(at, status, code))
            if 200 <= status < 300:
                intent.acked_at = clock()
                intent.ident = str(body.get("id") or body.get("scan_id"))
                return
            if not _retryable(status, body):
                return
        if clock() + RETRY_PAUSE_SECONDS > deadline:
            return
        await asyncio.sleep(RETRY_PAUSE_SECONDS)


async def run_burst(
    client: Client,
    burst: Burst,
    *,
    workers: int,
    fault_after_acks: int,
    fault: Callable[[], Awaitable[None]],
) -> float:
    """Send every write with ``workers`` in parallel; once ``fault_after_acks`` writes are
    acknowledged, inject ``fault`` (while the rest are sent). Returns when the fault was
    injected, in burst seconds."""
    loop = asyncio.get_running_loop()
    burst.started = loop.time()

    def clock() -> float:
        return loop.time() - burst.started

    queue: asyncio.Queue[Intent] = asyncio.Queue()
    for intent in burst.intents:
        queue.put_nowait(intent)
    fault_at: list[float] = []
    reached = asyncio.Event()

    async def worker() -> None:
        while not queue.empty():
            intent = queue.get_nowait()
            await send(client, burst, intent, clock)
            if len(burst.acknowledged()) >= fault_after_acks:
                reached.set()

    async def injector() -> None:
        await reached.wait()
        fault_at.append(clock())
        await fault()

    injecting = asyncio.create_task(injector())
    await asyncio.gather(*(worker() for _ in range(workers)))
    reached.set()  # a burst that never got that far still gets its fault
    await injecting
    return fault_at[0]
