"""The HTTP side of a delivery: one aiohttp session for the sender's life, every connection
checked against the outbound-address policy (``shared.outbound``) and pinned to the address
checked, bounded in time and in what it reads.

* **Addresses.** A host name is resolved by :class:`CheckedResolver` each time a connection
  is opened (no DNS cache): every address must be allowed, and the connection goes to one of
  exactly those addresses, so a name that resolves elsewhere a moment later (DNS rebinding)
  cannot move it. aiohttp does not resolve IP literals, so :func:`refused_literal` judges
  them before each request. A kept-alive connection was checked when it was opened.
* **Bounds.** Connect 5 s, total 15 s (headers and the part of the body read); at most
  ``MAX_BODY_BYTES`` of the body are read, then the connection is dropped, so a 100 MB answer
  or a receiver that never finishes costs 64 KiB and 15 s at most. Redirects are not followed.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import time
import urllib.parse
from dataclasses import dataclass
from typing import Final

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from services.webhook_fanout.domain.retry import AttemptOutcome, TransportError
from shared.outbound import (
    IPNetwork,
    OutboundRefused,
    check_addresses,
    literal_address,
    parse_cidrs,
    resolve,
)
from shared.settings import Settings

CONNECT_TIMEOUT_SECONDS: Final = 5.0
TOTAL_TIMEOUT_SECONDS: Final = 15.0
MAX_BODY_BYTES: Final = 64 * 1024
# Postgres text holds no NUL; a body is a diagnostic, not data.
_NUL = "\x00"


class RefusedAddress(OSError):
    """A receiver host that resolves to an address outside the outbound policy. An OSError,
    so aiohttp hands it back inside its connector error instead of hiding it."""


class CheckedResolver(AbstractResolver):
    """Resolves through ``shared.outbound`` and refuses unless every address is allowed."""

    def __init__(self, allowed: tuple[IPNetwork, ...]) -> None:
        self._allowed = allowed

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        try:
            addresses = await resolve(host, port)
            check_addresses(host, addresses, self._allowed)
        except OutboundRefused as exc:
            raise RefusedAddress(exc.detail) from None
        return [
            {
                "hostname": host,
                "host": str(address),
                "port": port,
                "family": socket.AF_INET6 if address.version == 6 else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for address in addresses
        ]

    async def close(self) -> None:
        return None


# Pure in its arguments (no DNS: a name answers None here and is checked by the resolver), so
# the per-delivery check of a busy subscription's URL is a dict lookup.
@functools.lru_cache(maxsize=4096)
def refused_literal(url: str, allowed: tuple[IPNetwork, ...]) -> str | None:
    """Why a URL whose host is an IP literal may not be reached (None: a name, or allowed)."""
    try:
        host = urllib.parse.urlsplit(url).hostname or ""
    except ValueError:
        return "the receiver URL does not parse"
    address = literal_address(host)
    if address is None:
        return None
    try:
        check_addresses(host, [address], allowed)
    except OutboundRefused as exc:
        return str(exc.detail)
    return None


@dataclass(frozen=True, slots=True)
class SendResult:
    """One attempt as recorded: ``outcome`` for the retry rules, the rest for the log."""

    outcome: AttemptOutcome
    body: str | None
    truncated: bool
    latency_ms: float
    error: str | None


def _failed(kind: TransportError, detail: str, started: float) -> SendResult:
    return SendResult(
        outcome=AttemptOutcome(error=kind),
        body=None,
        truncated=False,
        latency_ms=(time.perf_counter() - started) * 1000.0,
        error=f"{kind}: {detail}"[:1000],
    )


class DeliveryClient:
    """The sender's one HTTP client (``open`` once, ``close`` at the end)."""

    def __init__(self, settings: Settings) -> None:
        self.allowed = parse_cidrs(settings.outbound_allow_cidrs)
        self._per_host = settings.webhook_per_host_limit
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        connector = aiohttp.TCPConnector(
            resolver=CheckedResolver(self.allowed),
            use_dns_cache=False,
            limit=0,
            limit_per_host=self._per_host,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(
                total=TOTAL_TIMEOUT_SECONDS, sock_connect=CONNECT_TIMEOUT_SECONDS
            ),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("Accept-Encoding",),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(self, url: str, *, headers: dict[str, str], body: bytes) -> SendResult:
        started = time.perf_counter()
        refused = refused_literal(url, self.allowed)
        if refused is not None:
            return _failed("refused_address", refused, started)
        session = self._session
        if session is None:
            raise RuntimeError("the delivery client is not open")
        try:
            async with session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                retry_after = response.headers.get("Retry-After")
                body_bytes, truncated, read_error = await _read_bounded(response)
                if truncated or read_error:
                    # The rest is never read: the connection cannot be reused.
                    response.close()
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, RefusedAddress):
                return _failed("refused_address", str(exc.os_error), started)
            return _failed("connection", f"cannot connect: {exc.os_error}", started)
        except TimeoutError:
            return _failed("timeout", f"no answer within {TOTAL_TIMEOUT_SECONDS:g} s", started)
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return _failed("connection", f"{type(exc).__name__}: {exc}", started)
        return SendResult(
            outcome=AttemptOutcome(status=status, retry_after=retry_after),
            body=body_bytes.decode("utf-8", "replace").replace(_NUL, "\ufffd"),
            truncated=truncated,
            latency_ms=(time.perf_counter() - started) * 1000.0,
            error=read_error,
        )


async def _read_bounded(response: aiohttp.ClientResponse) -> tuple[bytes, bool, str | None]:
    """At most ``MAX_BODY_BYTES`` of the body; whether there was more; why reading stopped
    early (the status stands: a receiver that answered 200 and then stalled got the event)."""
    chunks: list[bytes] = []
    size = 0
    try:
        while size <= MAX_BODY_BYTES:
            chunk = await response.content.read(MAX_BODY_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except TimeoutError:
        return b"".join(chunks)[:MAX_BODY_BYTES], size > MAX_BODY_BYTES, "body read timed out"
    except (aiohttp.ClientError, asyncio.IncompleteReadError) as exc:
        return b"".join(chunks)[:MAX_BODY_BYTES], False, f"body read failed: {exc}"[:500]
    data = b"".join(chunks)
    return data[:MAX_BODY_BYTES], size > MAX_BODY_BYTES, None
