"""Helpers of the release candidate tests (no tests here): the stack, paths, events."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from contracts.envelope import decode_event
from shared.service import Runtime
from tests.conftest import StartService
from tests.integration.test_gateway_support import Api, gateway_api

SHA_A = "a" * 40
SHA_B = "b" * 40
SHA_C = "c" * 40


@asynccontextmanager
async def candidates_stack(start_service: StartService) -> AsyncIterator[Api]:
    """release-decision and a gateway in front of it."""
    await start_service("release-decision")
    async with gateway_api(start_service) as api:
        yield api


async def new_project(api: Api, *repos: str) -> str:
    """A project listing ``repos``; returns its slug."""
    slug = f"rc-{uuid.uuid4().hex[:8]}"
    await api.new_project(slug, repos=list(repos) or ["acme/api"])
    return slug


def problem_ok(reply: Any, status: int, code: str, error: str) -> None:
    """An Aviator-compatible problem: problem+json with our code and Aviator's ``error``."""
    assert reply.status == status, (reply.status, reply.body)
    assert reply.headers["Content-Type"].startswith("application/problem+json"), reply.headers
    assert reply.body["code"] == code, reply.body
    assert reply.body["error"] == error, reply.body
    assert reply.body["status"] == status and reply.body["title"] and reply.body["detail"]


async def events_of(runtime: Runtime, subject: str) -> list[Any]:
    """Every event on ``subject`` (wildcards allowed), in stream order."""
    js = runtime.bus.js
    sub = await js.pull_subscribe(subject, stream=runtime.bus.stream)
    found: list[Any] = []
    try:
        while True:
            try:
                msgs = await sub.fetch(100, timeout=0.3)
            except TimeoutError:
                break
            for msg in msgs:
                found.append(decode_event(msg.data, sequence=int(msg.metadata.sequence.stream)))
                await msg.ack()
    finally:
        await sub.unsubscribe()
    return found
