"""A small HTTP/1.1 client for webhook POSTs: keep-alive connections per receiver host,
one write per request, responses read within bounds.

Why not aiohttp's client: a delivery is one POST of a body already in memory and a small
answer, and aiohttp's general client (cookies, redirects, proxies, streaming bodies,
multidicts, tracing) spent about 125 µs of CPU per request where this spends about 45 µs
(``make bench``'s webhook throughput is bound by the sender's CPU). What it does:

* **Connections** per ``(scheme, host, port)``, at most ``per_host_limit`` at once, kept
  alive between requests and dropped after ``IDLE_SECONDS`` idle or when the receiver says
  ``Connection: close``. A kept-alive connection that the receiver closed before answering
  (its idle timeout raced our request: not one byte came back) is replaced and the request
  sent once more; the delivery id makes a duplicate harmless anyway.
* **Addresses**: each new connection resolves the host through ``shared.outbound`` and goes
  only to an address allowed there (and to exactly that address, so DNS rebinding cannot
  move it); https verifies the certificate for the host name.
* **Responses**: status line and headers (at most ``MAX_HEAD_BYTES``), then the body as
  framed (``Content-Length``, chunked, or up to the close), of which at most ``max_body``
  bytes are read: past that the connection is dropped. Interim 1xx answers are skipped.
* **Time**: ``connect_timeout`` for the connection, ``total_timeout`` for all of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from shared.outbound import IPNetwork, OutboundRefused, check_addresses, resolve

IDLE_SECONDS: Final = 4.0
MAX_HEAD_BYTES: Final = 64 * 1024
MAX_LINE_BYTES: Final = 8 * 1024
_FORBIDDEN_IN_HEADERS: Final = ("\r", "\n", "\x00")


class ConnectFailed(OSError):
    """No connection could be opened to any allowed address of the host."""


class AddressRefused(OSError):
    """The host resolves (or is) an address outside the outbound policy, or not at all."""


class ResponseInvalid(OSError):
    """The receiver's answer is not HTTP/1.x as it must be."""


class _Disconnected(OSError):
    """The connection ended before the response did; ``answered``: some of it came."""

    def __init__(self, answered: bool) -> None:
        super().__init__("the receiver closed the connection" + ("" if answered else " first"))
        self.answered = answered


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    # Header names lower-cased; a repeated header keeps its last value.
    headers: dict[str, str]
    body: bytes
    truncated: bool
    # The time ran out while the body was read (the status stands: the receiver answered).
    stalled: bool = False


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection: what arrived and whether it ended."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.ended = False
        self.idle_since = 0.0
        # Status and headers of the response being read, once they arrived.
        self.answer: tuple[int, dict[str, str]] | None = None
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._wake()

    def eof_received(self) -> bool:
        self.ended = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def more(self) -> None:
        """Wait for more bytes (or the end)."""
        if self.ended:
            raise _Disconnected(answered=True)
        self._waiter = asyncio.get_running_loop().create_future()
        await self._waiter

    def close(self) -> None:
        self.ended = True
        if self.transport is not None:
            self.transport.close()

    # ---- reading ---------------------------------------------------------------------------
    async def line(self) -> bytes:
        while True:
            end = self.buffer.find(b"\r\n")
            if end >= 0:
                out = bytes(self.buffer[:end])
                del self.buffer[: end + 2]
                return out
            if len(self.buffer) > MAX_LINE_BYTES:
                raise ResponseInvalid("a chunk line is too long")
            await self.more()

    async def exactly(self, size: int, *, keep: int) -> bytes:
        """Read ``size`` bytes, returning at most ``keep`` of them."""
        kept = bytearray()
        left = size
        while left:
            if not self.buffer:
                await self.more()
                continue
            piece = self.buffer[:left]
            del self.buffer[: len(piece)]
            left -= len(piece)
            if len(kept) < keep:
                kept += piece[: keep - len(kept)]
        return bytes(kept)


def _request_bytes(
    method: str, target: str, host: str, headers: dict[str, str], body: bytes
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    for name, value in headers.items():
        if any(c in name or c in value for c in _FORBIDDEN_IN_HEADERS) or ":" in name:
            raise ValueError(f"header {name!r} holds a character HTTP does not allow")
        lines.append(f"{name}: {value}")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _parse_head(head: bytes) -> tuple[int, bool, dict[str, str]]:
    """Status, whether the version is 1.1, and the headers of a response head."""
    status_line, _, rest = head.partition(b"\r\n")
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or parts[0] not in (b"HTTP/1.1", b"HTTP/1.0") or not parts[1].isdigit():
        raise ResponseInvalid(f"not an HTTP/1.x status line: {status_line[:80]!r}")
    status = int(parts[1])
    if not 100 <= status <= 999:
        raise ResponseInvalid(f"status {status} out of range")
    headers: dict[str, str] = {}
    for raw in rest.split(b"\r\n") if rest else ():
        name, colon, value = raw.partition(b":")
        if not colon or not name or name != name.strip():
            raise ResponseInvalid(f"not a header line: {raw[:80]!r}")
        headers[name.decode("latin-1").lower()] = value.strip().decode("latin-1")
    return status, parts[0] == b"HTTP/1.1", headers


async def _read_response(conn: _Connection, *, max_body: int) -> tuple[Response, bool]:
    """The response and whether the connection may carry another request."""
    while True:
        while (end := conn.buffer.find(b"\r\n\r\n")) < 0:
            if len(conn.buffer) > MAX_HEAD_BYTES:
                raise ResponseInvalid("the response headers are too large")
            try:
                await conn.more()
            except _Disconnected:
                raise _Disconnected(answered=bool(conn.buffer)) from None
        if end > MAX_HEAD_BYTES:
            raise ResponseInvalid("the response headers are too large")
        head = bytes(conn.buffer[:end])
        del conn.buffer[: end + 4]
        status, http11, headers = _parse_head(head)
        if 100 <= status < 200:
            continue  # interim (100 Continue, 103 Early Hints): the answer follows
        conn.answer = (status, headers)
        break
    connection = headers.get("connection", "").lower()
    reusable = http11 and "close" not in connection
    if not http11 and "keep-alive" in connection:
        reusable = True
    body = b""
    truncated = False
    if status in (204, 304):
        pass
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        body, truncated = await _read_chunked(conn, max_body=max_body)
    elif "content-length" in headers:
        value = headers["content-length"]
        if not value.isdigit():
            raise ResponseInvalid(f"Content-Length {value[:40]!r}")
        size = int(value)
        truncated = size > max_body
        body = await conn.exactly(min(size, max_body + 1), keep=max_body)
    else:
        body, truncated = await _read_to_close(conn, max_body=max_body)
        reusable = False
    if truncated:
        reusable = False
    return Response(status=status, headers=headers, body=body, truncated=truncated), reusable


async def _read_chunked(conn: _Connection, *, max_body: int) -> tuple[bytes, bool]:
    body = bytearray()
    while True:
        size_text = (await conn.line()).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ResponseInvalid(f"chunk size {size_text[:20]!r}") from None
        if size == 0:
            while await conn.line():  # trailer fields, up to the empty line
                pass
            return bytes(body), False
        if len(body) + size > max_body:
            body += await conn.exactly(max_body + 1 - len(body), keep=max_body - len(body))
            return bytes(body), True
        body += await conn.exactly(size, keep=size)
        if await conn.line():
            raise ResponseInvalid("a chunk does not end with CRLF")


async def _read_to_close(conn: _Connection, *, max_body: int) -> tuple[bytes, bool]:
    while len(conn.buffer) <= max_body:
        try:
            await conn.more()
        except _Disconnected:
            break
    body = bytes(conn.buffer[:max_body])
    truncated = len(conn.buffer) > max_body
    conn.buffer.clear()
    return body, truncated


@dataclass(frozen=True, slots=True)
class _Target:
    scheme: str
    host: str
    port: int
    request_target: str
    host_header: str


# A busy subscription posts to one URL over and over: parse it once.
@functools.lru_cache(maxsize=4096)
def _target(url: str) -> _Target:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url[:200]}")
    default = 443 if parts.scheme == "https" else 80
    port = parts.port or default
    host = parts.hostname
    shown = f"[{host}]" if ":" in host else host.encode("idna").decode("ascii")
    path = parts.path or "/"
    return _Target(
        scheme=parts.scheme,
        host=host,
        port=port,
        request_target=path + (f"?{parts.query}" if parts.query else ""),
        host_header=shown if port == default else f"{shown}:{port}",
    )


class Http1Client:
    """POSTs over kept-alive connections (``close`` at the end)."""

    def __init__(
        self,
        *,
        allowed: Sequence[IPNetwork],
        per_host_limit: int,
        connect_timeout: float,
        total_timeout: float,
        max_body: int,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._allowed = tuple(allowed)
        self._per_host = max(1, per_host_limit)
        self._connect_timeout = connect_timeout
        self._total_timeout = total_timeout
        self._max_body = max_body
        self._ssl = ssl_context or ssl.create_default_context()
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._slots: dict[tuple[str, str, int], asyncio.Semaphore] = {}

    async def post(self, url: str, *, headers: dict[str, str], body: bytes) -> Response:
        """Raises ``ValueError`` (a URL or header that cannot be sent), ``AddressRefused``,
        ``ConnectFailed``, ``ResponseInvalid``, ``OSError`` (the connection broke) and
        ``TimeoutError`` (``total_timeout`` passed)."""
        target = _target(url)
        payload = _request_bytes("POST", target.request_target, target.host_header, headers, body)
        key = (target.scheme, target.host.lower(), target.port)
        slots = self._slots.get(key)
        if slots is None:
            slots = self._slots[key] = asyncio.Semaphore(self._per_host)
        used: list[_Connection] = []
        try:
            async with asyncio.timeout(self._total_timeout), slots:
                conn = self._take_idle(key)
                if conn is not None:
                    used.append(conn)
                    try:
                        return await self._exchange(key, conn, payload)
                    except _Disconnected as exc:
                        if exc.answered:
                            raise
                        # The receiver closed the kept-alive connection as we sent: it never
                        # saw the request; send it once more on a new connection.
                conn = await self._connect(target)
                used.append(conn)
                return await self._exchange(key, conn, payload)
        except TimeoutError:
            if used and used[-1].answer is not None:
                status, answered = used[-1].answer
                return Response(
                    status=status, headers=answered, body=b"", truncated=False, stalled=True
                )
            raise

    async def _exchange(
        self, key: tuple[str, str, int], conn: _Connection, payload: bytes
    ) -> Response:
        try:
            assert conn.transport is not None
            conn.transport.write(payload)
            response, reusable = await _read_response(conn, max_body=self._max_body)
        except BaseException:
            conn.close()
            raise
        if reusable and not conn.ended and not conn.buffer:
            conn.idle_since = time.monotonic()
            self._idle.setdefault(key, []).append(conn)
        else:
            conn.close()
        return response

    def _take_idle(self, key: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.ended and now - conn.idle_since < IDLE_SECONDS:
                return conn
            conn.close()
        return None

    async def _connect(self, target: _Target) -> _Connection:
        try:
            async with asyncio.timeout(self._connect_timeout):
                addresses = await resolve(target.host, target.port)
                check_addresses(target.host, addresses, self._allowed)
        except OutboundRefused as exc:
            raise AddressRefused(exc.detail) from None
        loop = asyncio.get_running_loop()
        failure: OSError | None = None
        for address in addresses:
            try:
                async with asyncio.timeout(self._connect_timeout):
                    _, conn = await loop.create_connection(
                        _Connection,
                        host=str(address),
                        port=target.port,
                        ssl=self._ssl if target.scheme == "https" else None,
                        server_hostname=target.host if target.scheme == "https" else None,
                    )
                return conn
            except TimeoutError:
                failure = ConnectFailed(
                    f"{address}:{target.port}: no answer within {self._connect_timeout:g} s"
                )
            except OSError as exc:
                failure = exc
        raise ConnectFailed(str(failure or "no address"))

    async def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
        with contextlib.suppress(Exception):
            await asyncio.sleep(0)
