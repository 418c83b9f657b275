"""Helpers for the gateway integration tests (no tests here): start the gateway, talk HTTP."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg

from shared.service import Runtime
from tests.conftest import StartService

NO_TOKEN = object()


@dataclass
class Reply:
    status: int
    headers: Any
    body: Any  # decoded JSON when the response is JSON, else text

    @property
    def code(self) -> str | None:
        return self.body.get("code") if isinstance(self.body, dict) else None


@dataclass
class Api:
    runtime: Runtime
    http: aiohttp.ClientSession
    admin: str

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.runtime.http_port}"

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: Any = None,
        json: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        sent = dict(headers or {})
        if token is not NO_TOKEN:
            sent.setdefault("Authorization", f"Bearer {token or self.admin}")
        async with self.http.request(
            method, self.base + path, json=json, data=data, headers=sent
        ) as resp:
            text = await resp.text()
            ctype = resp.headers.get("Content-Type", "")
            body: Any = text
            if "json" in ctype and text:
                body = await resp.json(content_type=None)
            return Reply(resp.status, resp.headers, body)

    async def new_key(
        self,
        *roles: str,
        project: str | None = None,
        expires_at: dt.datetime | None = None,
        token: str | None = None,
    ) -> tuple[str, str]:
        """Create a key through the API; returns (key id, token)."""
        body: dict[str, Any] = {"name": f"test-{uuid.uuid4().hex[:6]}", "roles": list(roles)}
        if project is not None:
            body["project"] = project
        if expires_at is not None:
            body["expires_at"] = expires_at.isoformat()
        reply = await self.call("POST", "/api/v1/api-keys", json=body, token=token)
        assert reply.status == 201, reply.body
        return reply.body["id"], reply.body["token"]

    async def new_project(self, slug: str | None = None, **fields: Any) -> dict[str, Any]:
        body = {"slug": slug or f"p-{uuid.uuid4().hex[:10]}", "name": "A project", **fields}
        reply = await self.call("POST", "/api/v1/projects", json=body)
        assert reply.status == 201, reply.body
        return dict(reply.body)


@asynccontextmanager
async def gateway_api(start_service: StartService, **overrides: Any) -> AsyncIterator[Api]:
    runtime = await start_service("gateway", **overrides)
    async with aiohttp.ClientSession() as http:
        yield Api(runtime=runtime, http=http, admin=runtime.settings.bootstrap_token)


async def stream_count(runtime: Runtime) -> int:
    info = await runtime.bus.js.stream_info(runtime.bus.stream)
    return int(info.state.messages)


async def row_count(runtime: Runtime, table: str) -> int:
    conn = await asyncpg.connect(runtime.settings.database_url)
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM gateway.{table}"))
    finally:
        await conn.close()
