"""Public, token-free routes: the OpenAPI document, its docs page and the public config."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import jinja2
import msgspec
from aiohttp import web

from services.gateway.deps import deps_of
from services.gateway.dto import PublicConfig
from services.gateway.openapi import build_openapi
from services.gateway.routing import RequestContext, Route
from shared.service import VERSION

_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).resolve().parent.parent / "templates"),
    autoescape=True,
)
# The docs page is self-contained (air-gapped deployments): it may run its own inline script
# and styles and load nothing from anywhere.
_DOCS_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class _Rendered(msgspec.Struct, frozen=True):
    body: bytes
    etag: str


def _rendered(ctx: RequestContext, name: str, render: Callable[[list[Route]], bytes]) -> _Rendered:
    """The routes only change with the code: each document is built once per process."""
    deps = deps_of(ctx)
    found = deps.rendered.get(name)
    if not isinstance(found, _Rendered):
        body = render(deps.routes)
        found = _Rendered(body, f'"{hashlib.sha256(body).hexdigest()[:32]}"')
        deps.rendered[name] = found
    return found


def _openapi_document(routes: list[Route]) -> bytes:
    return msgspec.json.encode(build_openapi(routes, version=VERSION))


def _docs_page(routes: list[Route]) -> bytes:
    spec = build_openapi(routes, version=VERSION)
    html = _TEMPLATES.get_template("docs.html.j2").render(
        title=spec["info"]["title"], version=VERSION, spec=spec
    )
    return html.encode("utf-8")


def _cached(ctx: RequestContext, rendered: _Rendered, content_type: str) -> web.Response:
    headers = {"ETag": rendered.etag, "Cache-Control": "no-cache"}
    if rendered.etag in ctx.request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=rendered.body, headers=headers, content_type=content_type)


async def get_openapi(ctx: RequestContext) -> web.StreamResponse:
    return _cached(ctx, _rendered(ctx, "openapi", _openapi_document), "application/json")


async def get_docs(ctx: RequestContext) -> web.StreamResponse:
    response = _cached(ctx, _rendered(ctx, "docs", _docs_page), "text/html")
    response.charset = "utf-8"
    response.headers["Content-Security-Policy"] = _DOCS_CSP
    return response


async def get_public_config(ctx: RequestContext) -> web.StreamResponse:
    deps = deps_of(ctx)
    features = sorted({route.tag for route in deps.routes})
    config = PublicConfig(
        version=VERSION,
        features=features,
        help_url=deps.settings.help_url or None,
        banner=deps.settings.banner or None,
    )
    return web.Response(body=msgspec.json.encode(config), content_type="application/json")


ROUTES: list[Route] = [
    Route(
        method="GET",
        path="/api/openapi.json",
        handler=get_openapi,
        roles=None,
        summary="This API as an OpenAPI 3.1 document",
        tag="meta",
        response_media_type="application/json",
    ),
    Route(
        method="GET",
        path="/api/docs",
        handler=get_docs,
        roles=None,
        summary="The API reference as a self-contained HTML page",
        tag="meta",
        response_media_type="text/html",
    ),
    Route(
        method="GET",
        path="/api/public-config",
        handler=get_public_config,
        roles=None,
        summary="Version, enabled features, the help URL and the banner (operator-set), for "
        "clients and UIs",
        tag="meta",
        response=PublicConfig,
    ),
]
