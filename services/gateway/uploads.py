"""Raw uploads (zips, SBOMs, CSVs): read with the upload size limit, stored as blobs.

The gateway reads an upload once, with ``max_upload_bytes`` as the limit (the JSON limit
``max_body_bytes`` stays small), and hands the owning service only the digest: bulk bytes
never travel in a request/reply message (see the scanner design, "Gateway → blob → RPC").
"""

from __future__ import annotations

from aiohttp import web

from services.gateway.routing import RequestContext, Upload
from shared.blobs import BlobStore, digest_of
from shared.errors import UnsupportedMediaType, ValidationFailed
from shared.http import read_body

_BLOBS_KEY = "gateway.blobs"


def media_type_of(request: web.Request) -> str:
    return request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()


async def read_upload(request: web.Request, accepted: tuple[str, ...], *, max_bytes: int) -> Upload:
    """The body as an :class:`Upload`: 415 for another media type, 413 above ``max_bytes``,
    422 (``empty_body``) when there is nothing."""
    media_type = media_type_of(request)
    if media_type not in accepted:
        raise UnsupportedMediaType(
            f"expected Content-Type {' or '.join(accepted)}, got {media_type or 'none'!r}"
        )
    data = await read_body(request, max_bytes=max_bytes)
    if not data:
        raise ValidationFailed("the request body is empty", code="empty_body")
    return Upload(media_type=media_type, data=data, digest=digest_of(data))


async def gateway_blobs(ctx: RequestContext) -> BlobStore:
    """The gateway's handle on the blob store (opened on first use)."""
    blobs = ctx.runtime.state.get(_BLOBS_KEY)
    if not isinstance(blobs, BlobStore):
        blobs = ctx.runtime.state[_BLOBS_KEY] = await BlobStore.open(ctx.runtime.bus)
    return blobs


async def store_upload(ctx: RequestContext, upload: Upload) -> str:
    """Put the upload into the blob store (content-addressed: a repeat stores nothing)."""
    return await (await gateway_blobs(ctx)).put(upload.data)
