"""Helpers for the audit integration tests (no tests here): publish events, wait for the
log, ask the audit service, read its table."""

from __future__ import annotations

import datetime as dt
import os
import sys
from typing import Any

import asyncpg
import msgspec

from contracts.envelope import Envelope, encode_envelope, make_envelope
from contracts.events.identity import ProjectCreated
from contracts.ids import new_id
from contracts.rpc.audit import (
    SERVICE,
    VERIFY,
    AuditVerifyProgress,
    AuditVerifyRequest,
)
from services.audit.projection import PROJECTION_TABLES, SCHEMA
from shared.bus import Bus
from shared.rpc import CallContext, call
from shared.service import Runtime
from shared.settings import Settings
from tests.conftest import ROOT

CTX = CallContext(request_id="audit-test", actor="apikey:test", roles=("AUDITOR",))
TABLES = list(PROJECTION_TABLES)


def project_created(
    *, actor: str = "apikey:k1", at: dt.datetime | None = None, name: str = "A project"
) -> Envelope:
    project_id = new_id()
    return make_envelope(
        ProjectCreated(project_id=project_id, slug=f"p-{project_id[-12:]}", name=name),
        source="gateway",
        aggregate=f"project:{project_id}",
        actor=actor,
        occurred_at=at or dt.datetime.now(dt.UTC),
        correlation_id=f"req-{project_id[-6:]}",
    )


async def publish_raw(bus: Bus, subject: str, data: bytes, *, msg_id: str | None = None) -> int:
    """Publish bytes as they are (no envelope check); returns the stream sequence."""
    headers = {"Nats-Msg-Id": msg_id} if msg_id else None
    ack = await bus.js.publish(subject, data, stream=bus.stream, headers=headers)
    return int(ack.seq)


async def publish_burst(bus: Bus, envelopes: list[Envelope]) -> int:
    """Publish many events pipelined; returns the last stream sequence."""
    futures = [
        await bus.js.publish_async(
            envelope.type,
            encode_envelope(envelope),
            stream=bus.stream,
            headers={"Nats-Msg-Id": envelope.id},
        )
        for envelope in envelopes
    ]
    last = 0
    for future in futures:
        last = max(last, int((await future).seq))
    return last


async def caught_up(runtime: Runtime, *, timeout: float = 20.0) -> int:  # noqa: ASYNC109
    """Wait until the audit log has applied everything on the stream; returns that sequence."""
    last = await runtime.bus.last_sequence()
    await runtime.runners["log"].wait_for(last, timeout=timeout)
    return last


async def verify(bus: Bus, **request: Any) -> AuditVerifyProgress:
    return await call(
        bus,
        SERVICE,
        VERIFY,
        AuditVerifyRequest(**request),
        AuditVerifyProgress,
        ctx=CTX,
        timeout=10,
    )


async def fetch(settings: Settings, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def checkpoint(settings: Settings) -> int:
    rows = await fetch(
        settings,
        f"SELECT stream_sequence FROM {SCHEMA}.projection_checkpoint WHERE projection = 'log'",
    )
    return int(rows[0]["stream_sequence"]) if rows else 0


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
    env.update(
        {
            "GATEHOUSE_NATS_URL": settings.nats_url,
            "GATEHOUSE_DATABASE_URL": settings.database_url,
            "GATEHOUSE_STREAM_NAME": settings.stream_name,
            "GATEHOUSE_HTTP_PORT": "0",
            "GATEHOUSE_LOG_LEVEL": "warning",
            "PYTHONUNBUFFERED": "1",
            **extra,
        }
    )
    return env


CLI = [sys.executable, "-m", "services.cli"]
CLI_CWD = ROOT


def decoded(event: msgspec.Raw) -> dict[str, Any]:
    value: dict[str, Any] = msgspec.json.decode(bytes(event))
    return value
