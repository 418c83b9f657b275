"""``GET /blocked/{block_id}``: why a download was refused, as a page to paste into an
incident channel — the ``public_url`` of every 451 (no token: the id is an unguessable
UUID, and the page shows what the 451 showed: the reason, the customer message, until
when). A quarantine hold's id leads back to its artifact (``art_`` + the same 32 hex
digits): the page then says the artifact waits for its scan.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from contracts.rpc import registry as rpc
from services.gateway.routes._upstream import ask
from services.gateway.routing import RequestContext, Route
from shared.errors import GatehouseError, NotFound

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).resolve().parent.parent / "templates"),
    autoescape=True,
)
# Nothing but its own styles: the page runs no script and loads nothing.
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
}


async def blocked_page(ctx: RequestContext) -> web.StreamResponse:
    """The explanation; for an id nothing holds (any more: a block lifted, an artifact
    released) the page says so — a link pasted last week still tells what it is now."""
    block_id = ctx.request.match_info["block_id"].lower()
    if not _UUID.match(block_id):
        raise NotFound(f"{block_id[:100]!r} is not the id of a block")
    context: dict[str, Any] = {"block_id": block_id, "found": False, "title": "Not blocked"}
    context.update(await _block(ctx, block_id) or await _quarantine(ctx, block_id) or {})
    body = _TEMPLATES.get_template("blocked.html.j2").render(**context)
    return web.Response(text=body, content_type="text/html", headers=_HEADERS)


async def _block(ctx: RequestContext, block_id: str) -> dict[str, Any] | None:
    try:
        block = await ask(ctx, rpc.SERVICE, rpc.BLOCK_GET, rpc.BlockRequest(id=block_id), rpc.Block)
    except GatehouseError as exc:
        if exc.status == 404:
            return None
        raise
    return {
        "found": True,
        "title": "Download blocked",
        "reason": block.reason,
        "customer_message": block.customer_message,
        "blocked_until": block.blocked_until.isoformat() if block.blocked_until else None,
        "advisory_id": block.advisory_id,
    }


async def _quarantine(ctx: RequestContext, block_id: str) -> dict[str, Any] | None:
    request = rpc.ArtifactGetRequest(id="art_" + block_id.replace("-", ""))
    try:
        artifact = await ask(ctx, rpc.SERVICE, rpc.ARTIFACT_GET, request, rpc.Artifact)
    except GatehouseError as exc:
        if exc.status == 404:
            return None
        raise
    if not artifact.quarantined:
        return None
    return {
        "found": True,
        "title": "Held in quarantine",
        "reason": "New artifacts of this repository wait in quarantine until their scan "
        "passes or the security team releases them.",
        "customer_message": "",
        "blocked_until": None,
        "advisory_id": None,
    }


ROUTES = [
    Route(
        method="GET",
        path="/blocked/{block_id}",
        handler=blocked_page,
        roles=None,
        summary="Why a download was refused (451): a page to share, no token needed",
        tag="registry",
        response_media_type="text/html",
        errors=(404,),
    ),
]
