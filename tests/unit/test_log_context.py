"""Log lines carry the ids that let an operator follow one request or one event."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from contracts.envelope import decode_event, encode_envelope, make_envelope
from contracts.events.identity import ProjectCreated
from shared.http import SERVICE_KEY, edge_middleware
from shared.logging import configure_logging, event_log_context, get_logger


def _records(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


async def test_a_request_log_line_names_the_service_and_the_request_id(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(service="gateway")

    async def handler(request: web.Request) -> web.Response:
        get_logger("test").info("handling")
        return web.Response(text="ok")

    app = web.Application(middlewares=[edge_middleware])
    app[SERVICE_KEY] = "gateway"
    app.router.add_get("/x", handler)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/x", headers={"X-Request-ID": "req-1234abcd"})
        assert response.headers["X-Request-ID"] == "req-1234abcd"
    (record,) = [r for r in _records(capsys.readouterr().err) if r["event"] == "handling"]
    assert record["service"] == "gateway"
    assert record["request_id"] == record["correlation_id"] == "req-1234abcd"


def test_an_event_log_line_names_the_event_and_its_correlation(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(service="audit")
    envelope = make_envelope(
        ProjectCreated(project_id="p1", slug="p1", name="P1"),
        source="gateway",
        aggregate="project:p1",
        actor="system",
        correlation_id="req-42",
        occurred_at=dt.datetime.now(dt.UTC),
    )
    event = decode_event(encode_envelope(envelope), sequence=7)
    with event_log_context(event):
        get_logger("test").info("applying")
    get_logger("test").info("after")
    applying, after = _records(capsys.readouterr().err)
    assert applying["service"] == "audit"
    assert applying["event_id"] == envelope.id
    assert applying["event_type"] == "project.created"
    assert applying["correlation_id"] == "req-42"
    assert "event_id" not in after
    structlog.contextvars.clear_contextvars()
