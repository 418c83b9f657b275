"""An outage of PostgreSQL or NATS is answered 503 with ``Retry-After``, never 500.

A burst of writes (projects, owned by the gateway) and reads relayed to an owner service
(decisions, from release-decision over request/reply) runs while the database, then the bus,
is restarted under the stack. Every answer is a 2xx or a 503 ``database_unavailable`` /
``bus_unavailable`` / ``upstream_unavailable`` with ``Retry-After``; once the server is back,
writes succeed again.

The servers are private to this module (the session's are shared with every other test), on
fixed ports and data folders so that a restart brings back the same server.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from services.registry import definition
from shared.service import Runtime
from shared.settings import load_settings
from tests.conftest import PrivateInfra

ADMIN = "gh_test_bootstrap_admin_token_0123456789abcdef"
RETRYABLE_CODES = {"database_unavailable", "bus_unavailable", "upstream_unavailable"}
WORKERS = 8


@dataclass
class Stack:
    gateway: Runtime
    http: aiohttp.ClientSession

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.gateway.http_port}"


@pytest.fixture
async def stack(private_infra: PrivateInfra) -> AsyncIterator[Stack]:
    settings = load_settings(
        {},
        nats_url=private_infra.nats.url,
        database_url=private_infra.postgres.url(f"o_{uuid.uuid4().hex[:12]}"),
        # Every test of this module starts from an empty stream of its own name.
        stream_name=f"OUTAGES_{uuid.uuid4().hex[:8].upper()}",
        http_port=0,
        bootstrap_token=ADMIN,
        rate_limit_per_token=10_000.0,
        rate_limit_per_ip=10_000.0,
        rate_limit_burst=100_000,
    )
    started: list[Runtime] = []
    try:
        for name in ("release-decision", "gateway"):
            runtime = Runtime(definition(name), settings.with_(service=name))
            await runtime.start()
            started.append(runtime)
        async with aiohttp.ClientSession() as http:
            yield Stack(gateway=started[-1], http=http)
    finally:
        for runtime in reversed(started):
            await runtime.stop()
    # Two streams cannot share subjects: leave the server as this test found it.
    import nats

    nc = await nats.connect(settings.nats_url)
    try:
        await nc.jetstream().delete_stream(settings.stream_name)
    finally:
        await nc.close()


@dataclass
class Answer:
    what: str
    status: int
    code: str | None
    retry_after: str | None
    # A write's Idempotency-Key and body, to retry it as the client would.
    key: str | None = None
    body: Any = None


@dataclass
class Burst:
    """Writes and relayed reads from a few concurrent clients until ``stop`` is set."""

    stack: Stack
    answers: list[Answer] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def one(
        self, what: str, method: str, path: str, body: Any = None, *, key: str | None = None
    ) -> Answer:
        headers = {"Authorization": f"Bearer {ADMIN}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        async with self.stack.http.request(
            method, self.stack.base + path, json=body, headers=headers
        ) as reply:
            payload = await reply.json(content_type=None) if reply.status >= 400 else None
            answer = Answer(
                what=what,
                status=reply.status,
                code=payload.get("code") if isinstance(payload, dict) else None,
                retry_after=reply.headers.get("Retry-After"),
                key=key,
                body=body,
            )
        self.answers.append(answer)
        return answer

    async def client(self, number: int) -> None:
        i = 0
        while not self.stop.is_set():
            i += 1
            slug = f"p{number}-{i}-{uuid.uuid4().hex[:6]}"
            await self.one(
                "create", "POST", "/api/v1/projects", {"slug": slug, "name": slug}, key=slug
            )
            commit = uuid.uuid4().hex + "00000000"
            await self.one(
                "relayed read",
                "GET",
                f"/api/v1/releases/decision?repo=acme/web&commit={commit}",
            )

    async def run_while(self, outage: Callable[[], Awaitable[None]]) -> None:
        clients = [asyncio.create_task(self.client(n)) for n in range(WORKERS)]
        try:
            await outage()
        finally:
            self.stop.set()
            await asyncio.gather(*clients)


async def until_written(stack: Stack, *, within: float = 60.0) -> Answer:
    """A write retried as a client should (honouring Retry-After) until it succeeds."""
    burst = Burst(stack)
    deadline = asyncio.get_running_loop().time() + within
    while True:
        slug = f"after-{uuid.uuid4().hex[:8]}"
        answer = await burst.one("create", "POST", "/api/v1/projects", {"slug": slug, "name": slug})
        if answer.status == 201:
            return answer
        assert answer.status == 503 and answer.retry_after, answer
        assert asyncio.get_running_loop().time() < deadline, "writes never succeeded again"
        await asyncio.sleep(min(float(answer.retry_after), 1.0))


# What each request answers while nothing is wrong: the project is created, the commit (made
# up) is unknown to release-decision.
NORMAL = {"create": (201, None), "relayed read": (404, "repo_not_found")}


def assert_retryable_only(answers: list[Answer]) -> None:
    unexpected = [a for a in answers if a.status != 503 and (a.status, a.code) != NORMAL[a.what]]
    assert not unexpected, unexpected[:10]
    for answer in answers:
        if answer.status == 503:
            assert answer.code in RETRYABLE_CODES, answer
            assert answer.retry_after is not None and int(answer.retry_after) >= 1, answer


async def test_a_postgres_restart_answers_503_with_retry_after_never_500(
    stack: Stack, private_infra: PrivateInfra
) -> None:
    burst = Burst(stack)

    async def restart_postgres() -> None:
        await until_some(burst, lambda: len(burst.answers) >= 20)
        before = len(burst.answers)
        await asyncio.to_thread(private_infra.postgres.stop)
        # Requests meet the stopped database: connections refused, sessions terminated.
        await until_some(burst, lambda: len(burst.answers) >= before + 4 * WORKERS)
        await asyncio.to_thread(private_infra.postgres.start)

    await burst.run_while(restart_postgres)

    assert_retryable_only(burst.answers)
    unavailable = [a for a in burst.answers if a.status == 503]
    assert unavailable, "the burst never met the stopped database"
    assert {a.code for a in unavailable} & {"database_unavailable"}, unavailable[:5]
    # The owner service's own database outage reaches the client as a 503 too.
    assert any(a.what == "relayed read" for a in unavailable), unavailable[:5]
    await until_written(stack)
    # Each write answered 503 succeeds when retried with its Idempotency-Key once the database
    # is back: never shut out by its own first attempt (409 in_progress until it counted as
    # abandoned, 60 s, when the attempt could not be released during the outage).
    failed = [a for a in unavailable if a.what == "create"]
    retry = Burst(stack)
    for first in failed:
        deadline = asyncio.get_running_loop().time() + 15.0
        while True:
            again = await retry.one("create", "POST", "/api/v1/projects", first.body, key=first.key)
            if again.status == 201:
                break
            assert again.status in (409, 503), again
            assert asyncio.get_running_loop().time() < deadline, f"{first.key}: {again}"
            await asyncio.sleep(0.2)


async def test_a_nats_restart_answers_503_with_retry_after_never_500(
    stack: Stack, private_infra: PrivateInfra
) -> None:
    burst = Burst(stack)

    async def restart_nats() -> None:
        await until_some(burst, lambda: len(burst.answers) >= 20)
        before = len(burst.answers)
        await asyncio.to_thread(private_infra.nats.stop)
        await until_some(burst, lambda: len(burst.answers) >= before + 2 * WORKERS)
        await asyncio.to_thread(private_infra.nats.start)

    await burst.run_while(restart_nats)

    assert_retryable_only(burst.answers)
    assert any(a.status == 503 for a in burst.answers), "the burst never met the stopped bus"
    await until_written(stack)


async def until_some(
    burst: Burst,
    condition: Callable[[], bool],
    *,
    timeout: float = 60.0,  # noqa: ASYNC109 - a polling deadline
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "the burst made no progress"
        await asyncio.sleep(0.02)
