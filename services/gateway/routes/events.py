"""The public event catalog over HTTP: every event type with its subject and JSON Schema."""

from __future__ import annotations

import functools
import hashlib

import msgspec
from aiohttp import web

from contracts.catalog import EventCatalog, event_catalog
from services.gateway.routing import ALL_ROLES, RequestContext, Route


@functools.cache
def _catalog_body() -> tuple[bytes, str]:
    """The catalog only changes with the code, so it is encoded once per process."""
    body = msgspec.json.encode(event_catalog())
    return body, f'"{hashlib.sha256(body).hexdigest()[:32]}"'


async def get_event_catalog(ctx: RequestContext) -> web.StreamResponse:
    body, etag = _catalog_body()
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if _matches(ctx.request.headers.get("If-None-Match", ""), etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, headers=headers, content_type="application/json")


def _matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 §13.1.2: a weak comparison against a list of tags, or ``*``."""
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


ROUTES: list[Route] = [
    Route(
        method="GET",
        path="/api/v1/events/catalog",
        handler=get_event_catalog,
        roles=ALL_ROLES,
        summary="List every event type with its NATS subject, description and JSON Schema",
        tag="events",
        response=EventCatalog,
    ),
]
