"""Request bodies as streams: a raw body, the parts of a multipart form.

Nothing here holds a file in memory: the ``content`` part (or a generic PUT's body) is
handed to the artifact blob store chunk by chunk; only the form's small text fields are
read whole, within bounds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from services.gateway.deps import GatewayDeps
from services.gateway.packages.domain.errors import InvalidUploadForm
from services.gateway.packages.domain.upload_form import (
    MAX_FIELD_BYTES,
    MAX_FIELDS,
    MAX_FORM_BYTES,
)
from services.gateway.uploads import media_type_of
from shared.artifact_blobs import BlobTooLarge, Staged
from shared.artifact_paths import check_filename
from shared.errors import UnsupportedMediaType

CHUNK_BYTES = 256 * 1024
FILE_PART = "content"
# Parts twine may send that Gatehouse does not keep (signatures are not part of the
# legacy API any more; attestations are PyPI's): read and dropped, within the field bounds.
_DROPPED_PARTS = {"gpg_signature", "attestations"}


def refuse_declared_too_large(request: web.Request, limit: int) -> None:
    """413 before a byte is read when ``Content-Length`` already says too much."""
    if request.content_length is not None and request.content_length > limit:
        raise BlobTooLarge(
            f"the upload is {request.content_length} bytes; the limit is {limit}",
            extra={"limit": limit},
        )


async def body_chunks(request: web.Request) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_chunked(CHUNK_BYTES):
        yield chunk


@dataclass
class UploadParts:
    fields: dict[str, list[str]] = field(default_factory=dict)
    filename: str | None = None
    content: Staged | None = None


async def read_upload_form(
    request: web.Request, deps: GatewayDeps, *, staged: list[Staged], max_bytes: int
) -> UploadParts:
    """The form's text fields, and its ``content`` part staged in the blob store (put in
    ``staged`` at once, so that the caller discards it whatever happens next)."""
    if media_type_of(request) != "multipart/form-data":
        raise UnsupportedMediaType(
            f"an upload is multipart/form-data, not {media_type_of(request) or 'none'!r}"
        )
    try:
        return await _read_parts(request, deps, staged=staged, max_bytes=max_bytes)
    except (HttpProcessingError, ValueError, AssertionError) as exc:
        # aiohttp's multipart parser refusing the body (a NUL or line break in a part's
        # header, a missing boundary, a truncated part).
        message = " ".join(str(getattr(exc, "message", "") or exc).split())[:200]
        raise InvalidUploadForm(f"malformed multipart/form-data body: {message}") from None


async def _read_parts(
    request: web.Request, deps: GatewayDeps, *, staged: list[Staged], max_bytes: int
) -> UploadParts:
    parts = UploadParts()
    form_bytes = 0
    count = 0
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if isinstance(part, MultipartReader):
            raise InvalidUploadForm("nested multipart bodies are not accepted")
        count += 1
        if count > MAX_FIELDS:
            raise InvalidUploadForm(f"more than {MAX_FIELDS} form fields")
        if part.name == FILE_PART:
            if parts.content is not None:
                raise InvalidUploadForm("more than one content part", extra={"field": "content"})
            parts.filename = check_filename(part.filename or "")
            item = await deps.artifact_blobs.stage(_part_chunks(part), max_bytes=max_bytes)
            staged.append(item)
            parts.content = item
            continue
        value = await _read_field(part)
        form_bytes += len(value)
        if form_bytes > MAX_FORM_BYTES:
            raise InvalidUploadForm(f"the form's fields exceed {MAX_FORM_BYTES} bytes")
        if part.name is None or part.name in _DROPPED_PARTS:
            continue
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidUploadForm(
                f"the field {part.name} is not UTF-8 text", extra={"field": part.name}
            ) from None
        parts.fields.setdefault(part.name, []).append(text)
    return parts


async def _part_chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(CHUNK_BYTES):
        yield chunk


async def _read_field(part: BodyPartReader) -> bytes:
    data = bytearray()
    while chunk := await part.read_chunk(CHUNK_BYTES):
        data.extend(chunk)
        if len(data) > MAX_FIELD_BYTES:
            raise InvalidUploadForm(
                f"the field {part.name} exceeds {MAX_FIELD_BYTES} bytes", extra={"field": part.name}
            )
    return bytes(data)


async def one_chunk(data: bytes) -> AsyncIterator[bytes]:
    """``data`` as a stream (a small side file, such as a wheel's METADATA)."""
    yield data
