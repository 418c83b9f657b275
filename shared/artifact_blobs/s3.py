"""Artifact blobs in an S3-compatible object store (AWS S3, MinIO, Ceph RGW, ...), spoken with
aiohttp and our own SigV4 signing (``sigv4.py``): no AWS SDK at runtime.

Objects are ``<prefix>sha256/<hex>``, path-style (``<endpoint>/<bucket>/<key>``). Uploads are
staged on local disk first (``<artifact_dir>/staging``), so a commit knows the content's
sha256 before it sends a byte: a PUT carries it as ``x-amz-content-sha256`` and the store
refuses the object if the bytes that arrive differ. Objects above ``multipart_threshold``
(5 GiB, S3's single-PUT limit) go as a multipart upload whose parts each carry their own
sha256. ``If-None-Match: *`` makes a commit create-only where the store supports it, so
concurrent commits of the same content write it once.

Network failures, timeouts and 5xx answers are retried a few times and then become
:class:`BlobStoreUnavailable` (503); refusals no retry fixes (credentials, a missing bucket)
become :class:`BlobStoreError` naming the S3 error code. The secret key is never logged: only
the signing code sees it.
"""

from __future__ import annotations

import asyncio
import hashlib
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import aiohttp
from yarl import URL

from shared.artifact_blobs.base import (
    BYTES,
    FAILURES,
    READ_CHUNK_BYTES,
    BlobMissing,
    BlobStoreError,
    BlobStoreUnavailable,
    Staged,
    check_range,
    sha256_hex,
)
from shared.artifact_blobs.sigv4 import EMPTY_SHA256, Credentials, sign_s3
from shared.artifact_blobs.staging import StagingArea, check_staged, remove_quietly
from shared.logging import get_logger

log = get_logger(__name__)

BACKEND = "s3"
GIB = 1024**3
# S3 accepts one PUT of up to 5 GiB; above that only a multipart upload.
SINGLE_PUT_LIMIT = 5 * GIB
# S3's bounds on parts: at least 5 MiB (all but the last), at most 10,000 of them.
MIN_PART_BYTES = 5 * 1024 * 1024
MAX_PARTS = 10_000
# File reads that feed a request body.
BODY_CHUNK_BYTES = 256 * 1024
# Tries of one request that failed on the network or with a 5xx, and the pause before each
# retry (a restarting MinIO answers again within a second or two).
ATTEMPTS = 3
RETRY_DELAYS = (0.2, 1.0)
# 409: a conditional write raced another one to the same key (ConditionalRequestConflict);
# the retry finds the object there (412).
_RETRY_STATUSES = frozenset({409, 500, 502, 503, 504})
# Longest error document read from a refusal.
ERROR_BODY_LIMIT = 64 * 1024
_TRANSPORT_ERRORS = (aiohttp.ClientError, OSError, asyncio.TimeoutError)


class _Retry(Exception):
    """A transient failure worth another try (network, timeout, 5xx)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class _Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes


BodyFactory = Callable[[], AsyncIterable[bytes]]


class S3BlobStore(StagingArea):
    backend = BACKEND

    def __init__(
        self,
        *,
        endpoint_url: str,
        bucket: str,
        credentials: Credentials,
        staging_dir: Path,
        prefix: str = "",
        part_bytes: int = 64 * 1024 * 1024,
        multipart_threshold: int = SINGLE_PUT_LIMIT,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if part_bytes < MIN_PART_BYTES:
            raise ValueError(f"parts must be at least {MIN_PART_BYTES} bytes, not {part_bytes}")
        endpoint = URL(endpoint_url.rstrip("/"))
        if endpoint.scheme not in ("http", "https") or not endpoint.host:
            raise ValueError(f"not an http(s) endpoint URL: {endpoint_url!r}")
        self._endpoint = endpoint.with_query(None).with_fragment(None)
        self._host = _host_header(self._endpoint)
        self._base_path = self._endpoint.path.rstrip("/")
        self.bucket = bucket
        self.prefix = prefix
        self.staging_dir = staging_dir
        self._credentials = credentials
        self._part_bytes = part_bytes
        self._multipart_threshold = min(multipart_threshold, SINGLE_PUT_LIMIT)
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self._clock = clock or (lambda: datetime.now(UTC))
        self._session: aiohttp.ClientSession | None = None
        # If-None-Match on writes, until the store says it has no such thing.
        self._conditional_writes = True

    def __repr__(self) -> str:
        return (
            f"S3BlobStore(endpoint={str(self._endpoint)!r}, bucket={self.bucket!r}, "
            f"prefix={self.prefix!r}, access_key_id={self._credentials.access_key_id!r})"
        )

    def key_of(self, digest: str) -> str:
        return f"{self.prefix}sha256/{sha256_hex(digest)}"

    # -- the protocol ------------------------------------------------------------------------

    async def commit(self, staged: Staged) -> bool:
        """Upload by digest unless already there; True if this call created the object. The
        temp file is removed afterwards, also when the upload fails."""
        check_staged(staged, self.staging_dir)
        try:
            if not await asyncio.to_thread(staged.path.exists):
                raise BlobStoreError("the staged upload is gone (already committed or discarded)")
            if await self.size(staged.digest) is not None:
                return False
            if staged.size > self._multipart_threshold:
                created = await self._multipart_upload(staged)
            else:
                created = await self._put(staged)
        finally:
            remove_quietly(staged.path)
        if created:
            BYTES.labels(BACKEND, "committed").inc(staged.size)
        return created

    async def discard(self, staged: Staged) -> None:
        check_staged(staged, self.staging_dir)
        remove_quietly(staged.path)

    async def size(self, digest: str) -> int | None:
        reply = await self._call("HEAD", self.key_of(digest), ok=(200, 404))
        if reply.status == 404:
            return None
        return int(reply.headers.get("Content-Length", "0"))

    async def read(
        self, digest: str, *, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        check_range(start, end)
        if end is not None and end == start:
            if await self.size(digest) is None:
                raise BlobMissing(f"no blob {sha256_hex(digest)}")
            return
        key = self.key_of(digest)
        headers: dict[str, str] = {}
        if start or end is not None:
            last = "" if end is None else str(end - 1)
            headers["Range"] = f"bytes={start}-{last}"
        response = await self._open("GET", key, headers=headers)
        try:
            if response.status == 404:
                code = await _error_code(response)
                if code == "NoSuchBucket":
                    raise BlobStoreError(f"the bucket {self.bucket!r} does not exist")
                raise BlobMissing(f"no blob {sha256_hex(digest)}")
            if response.status == 416:  # the range starts at or past the end
                return
            if response.status not in (200, 206):
                raise await _refusal("GET", key, response)
            # A store that ignores Range answers 200 with the whole object: cut it here.
            whole = response.status == 200 and "Range" in headers
            skip = start if whole else 0
            remaining = end - start if whole and end is not None else None
            try:
                async for data in response.content.iter_chunked(READ_CHUNK_BYTES):
                    chunk = data
                    if skip:
                        chunk, skip = chunk[skip:], max(0, skip - len(chunk))
                    if remaining is not None:
                        chunk = chunk[:remaining]
                        remaining -= len(chunk)
                    if chunk:
                        BYTES.labels(BACKEND, "read").inc(len(chunk))
                        yield chunk
                    if remaining == 0:
                        break
            except _TRANSPORT_ERRORS as exc:
                FAILURES.labels(BACKEND, "read", BlobStoreUnavailable.code).inc()
                raise BlobStoreUnavailable(
                    f"the artifact store broke off a download: {type(exc).__name__}"
                ) from None
        finally:
            response.release()

    async def delete(self, digest: str) -> None:
        await self._call("DELETE", self.key_of(digest), ok=(200, 204, 404))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- uploads -----------------------------------------------------------------------------

    def _create_only(self) -> dict[str, str]:
        return {"If-None-Match": "*"} if self._conditional_writes else {}

    def _conditional_refused(self, reply: _Reply) -> bool:
        """A store without conditional writes (501): write unconditionally from now on; the
        content is the same whoever writes it, only the "created" answer gets less exact."""
        if reply.status != 501 or not self._conditional_writes:
            return False
        self._conditional_writes = False
        log.warning("artifact_store_without_conditional_writes", endpoint=str(self._endpoint))
        return True

    async def _put(self, staged: Staged) -> bool:
        while True:
            reply = await self._call(
                "PUT",
                self.key_of(staged.digest),
                headers={"Content-Length": str(staged.size), **self._create_only()},
                body=lambda: _file_range(staged.path, 0, staged.size),
                payload_sha256=staged.sha256,
                ok=(200, 412, 501) if self._conditional_writes else (200,),
            )
            if not self._conditional_refused(reply):
                return reply.status == 200

    def part_size_for(self, size: int) -> int:
        """The configured part size, grown when the object would need more than 10,000."""
        return max(self._part_bytes, -(-size // MAX_PARTS))

    async def _multipart_upload(self, staged: Staged) -> bool:
        key = self.key_of(staged.digest)
        started = await self._call("POST", key, query=[("uploads", "")])
        upload_id = _xml_text(started.body, "UploadId")
        if not upload_id:
            raise BlobStoreError("the artifact store started a multipart upload without an id")
        completed = False
        try:
            part_bytes = self.part_size_for(staged.size)
            etags: list[str] = []
            for number, offset in enumerate(range(0, staged.size, part_bytes), start=1):
                length = min(part_bytes, staged.size - offset)
                etags.append(
                    await self._put_part(staged.path, key, upload_id, number, offset, length)
                )
            document = _complete_document(etags)
            while True:
                reply = await self._call(
                    "POST",
                    key,
                    query=[("uploadId", upload_id)],
                    headers={"Content-Type": "application/xml", **self._create_only()},
                    body=lambda: _bytes_body(document),
                    payload_sha256=hashlib.sha256(document).hexdigest(),
                    ok=(200, 412, 501) if self._conditional_writes else (200,),
                )
                if not self._conditional_refused(reply):
                    break
            if reply.status == 200 and b"<Error>" in reply.body:
                # CompleteMultipartUpload can fail after its 200 has been sent.
                code = _xml_text(reply.body, "Code") or "unknown"
                if code in ("InternalError", "SlowDown", "ServiceUnavailable"):
                    raise BlobStoreUnavailable(f"completing a multipart upload failed: {code}")
                raise BlobStoreError(f"completing a multipart upload failed: {code}")
            completed = reply.status == 200
            return completed
        finally:
            if not completed:
                await self._abort(key, upload_id)

    async def _put_part(
        self, path: Path, key: str, upload_id: str, number: int, offset: int, length: int
    ) -> str:
        part_sha256 = await asyncio.to_thread(_sha256_of_range, path, offset, length)
        reply = await self._call(
            "PUT",
            key,
            query=[("partNumber", str(number)), ("uploadId", upload_id)],
            headers={"Content-Length": str(length)},
            body=lambda: _file_range(path, offset, length),
            payload_sha256=part_sha256,
        )
        etag = reply.headers.get("ETag")
        if not etag:
            raise BlobStoreError(f"the artifact store answered part {number} without an ETag")
        return etag

    async def _abort(self, key: str, upload_id: str) -> None:
        """Best effort: a failed abort leaves parts that the bucket's lifecycle rule for
        incomplete multipart uploads (see the README) cleans up."""
        try:
            await self._call("DELETE", key, query=[("uploadId", upload_id)], ok=(200, 204, 404))
        except (BlobStoreUnavailable, BlobStoreError) as exc:
            log.warning("artifact_multipart_abort_failed", key=key, error=exc.code)

    # -- requests ----------------------------------------------------------------------------

    def _session_(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, auto_decompress=False, raise_for_status=False
            )
        return self._session

    def _signed(
        self,
        method: str,
        key: str,
        *,
        query: Iterable[tuple[str, str]],
        headers: Mapping[str, str],
        payload_sha256: str,
    ) -> tuple[URL, dict[str, str]]:
        path = f"{self._base_path}/{self.bucket}/{key}"
        encoded_path, canonical_query, signature = sign_s3(
            self._credentials,
            method=method,
            host=self._host,
            path=path,
            query=query,
            headers=headers,
            payload_sha256=payload_sha256,
            now=self._clock(),
        )
        target = str(self._endpoint.with_path("")) + encoded_path
        if canonical_query:
            target += "?" + canonical_query
        return URL(target, encoded=True), signature.headers

    async def _open(
        self,
        method: str,
        key: str,
        *,
        query: Iterable[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
        body: BodyFactory | None = None,
        payload_sha256: str = EMPTY_SHA256,
    ) -> aiohttp.ClientResponse:
        """Send a request, retrying network failures and 5xx answers; the caller releases the
        response. Every try is signed afresh (the signature carries its time)."""
        query = list(query)
        reason = ""
        for attempt in range(ATTEMPTS):
            if attempt:
                await asyncio.sleep(RETRY_DELAYS[min(attempt - 1, len(RETRY_DELAYS) - 1)])
            url, signed = self._signed(
                method, key, query=query, headers=headers or {}, payload_sha256=payload_sha256
            )
            try:
                response = await self._session_().request(
                    method, url, headers=signed, data=None if body is None else body()
                )
            except _TRANSPORT_ERRORS as exc:
                reason = type(exc).__name__
            else:
                if response.status not in _RETRY_STATUSES:
                    return response
                reason = f"HTTP {response.status} {await _error_code(response)}"
                response.release()
            log.warning(
                "artifact_store_retry", method=method, key=key, attempt=attempt + 1, reason=reason
            )
        FAILURES.labels(BACKEND, method.lower(), BlobStoreUnavailable.code).inc()
        raise BlobStoreUnavailable(f"the artifact store did not answer {method}: {reason}")

    async def _call(
        self,
        method: str,
        key: str,
        *,
        query: Iterable[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
        body: BodyFactory | None = None,
        payload_sha256: str = EMPTY_SHA256,
        ok: Iterable[int] = (200,),
    ) -> _Reply:
        """A request whose answer is small (everything but GET of an object)."""
        response = await self._open(
            method, key, query=query, headers=headers, body=body, payload_sha256=payload_sha256
        )
        try:
            if response.status not in tuple(ok):
                raise await _refusal(method, key, response)
            try:
                data = b"" if method == "HEAD" else await response.read()
            except _TRANSPORT_ERRORS as exc:
                raise BlobStoreUnavailable(
                    f"the artifact store broke off its answer to {method}: {type(exc).__name__}"
                ) from None
            return _Reply(status=response.status, headers=response.headers, body=data)
        finally:
            response.release()


def _host_header(endpoint: URL) -> str:
    host = endpoint.raw_host or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    default = 443 if endpoint.scheme == "https" else 80
    return host if endpoint.port in (None, default) else f"{host}:{endpoint.port}"


async def _error_code(response: aiohttp.ClientResponse) -> str:
    try:
        body = await response.content.read(ERROR_BODY_LIMIT)
    except _TRANSPORT_ERRORS:
        return ""
    return _xml_text(body, "Code") or ""


async def _refusal(method: str, key: str, response: aiohttp.ClientResponse) -> BlobStoreError:
    code = await _error_code(response) if method != "HEAD" else ""
    log.error(
        "artifact_store_refused", method=method, key=key, status=response.status, s3_code=code
    )
    FAILURES.labels(BACKEND, method.lower(), BlobStoreError.code).inc()
    return BlobStoreError(
        f"the artifact store refused {method} with HTTP {response.status} {code}".rstrip(),
        extra={"store_status": response.status, "store_code": code},
    )


def _xml_text(document: bytes, tag: str) -> str | None:
    """The text of the first element named ``tag`` in any namespace, or None."""
    try:
        root = ET.fromstring(document)
    except ET.ParseError:
        return None
    for element in root.iter():
        if element.tag == tag or element.tag.endswith("}" + tag):
            return (element.text or "").strip()
    return None


def _complete_document(etags: list[str]) -> bytes:
    parts = "".join(
        f"<Part><PartNumber>{number}</PartNumber><ETag>{_xml_escape(etag)}</ETag></Part>"
        for number, etag in enumerate(etags, start=1)
    )
    return f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


async def _bytes_body(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _file_range(path: Path, offset: int, length: int) -> AsyncIterator[bytes]:
    """``length`` bytes of ``path`` from ``offset``, read in a worker thread."""
    handle: IO[bytes] = await asyncio.to_thread(_open_at, path, offset)
    try:
        remaining = length
        while remaining > 0:
            chunk = await asyncio.to_thread(handle.read, min(BODY_CHUNK_BYTES, remaining))
            if not chunk:
                raise BlobStoreError(f"the staged upload {path.name} is shorter than recorded")
            remaining -= len(chunk)
            yield chunk
    finally:
        handle.close()


def _open_at(path: Path, offset: int) -> IO[bytes]:
    handle = path.open("rb")
    handle.seek(offset)
    return handle


def _sha256_of_range(path: Path, offset: int, length: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        handle.seek(offset)
        remaining = length
        while remaining > 0:
            chunk = handle.read(min(1024 * 1024, remaining))
            if not chunk:
                break
            digest.update(chunk)
            remaining -= len(chunk)
    return digest.hexdigest()
