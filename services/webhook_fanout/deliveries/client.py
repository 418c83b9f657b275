"""The HTTP side of a delivery: one client (``deliveries.http1``) for the sender's life, every
connection checked against the outbound-address policy (``shared.outbound``) and pinned to
the address checked, bounded in time and in what it reads.

* **Addresses.** A host name is resolved each time a connection is opened (no DNS cache):
  every address must be allowed, and the connection goes to one of exactly those addresses,
  so a name that resolves elsewhere a moment later (DNS rebinding) cannot move it. An IP
  literal is judged by :func:`refused_literal` before each request (a dict lookup for a busy
  subscription). A kept-alive connection was checked when it was opened.
* **Bounds.** Connect 5 s, total 15 s (headers and the part of the body read); at most
  ``MAX_BODY_BYTES`` of the body are read, then the connection is dropped, so a 100 MB answer
  or a receiver that never finishes costs 64 KiB and 15 s at most. Redirects are not followed.
"""

from __future__ import annotations

import functools
import time
import urllib.parse
from dataclasses import dataclass
from typing import Final

from services.webhook_fanout.deliveries.http1 import AddressRefused, ConnectFailed, Http1Client
from services.webhook_fanout.domain.retry import AttemptOutcome, TransportError
from shared.outbound import (
    IPNetwork,
    OutboundRefused,
    check_addresses,
    literal_address,
    parse_cidrs,
)
from shared.settings import Settings

CONNECT_TIMEOUT_SECONDS: Final = 5.0
TOTAL_TIMEOUT_SECONDS: Final = 15.0
MAX_BODY_BYTES: Final = 64 * 1024
# Postgres text holds no NUL; a body is a diagnostic, not data.
_NUL = "\x00"


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
        self._http: Http1Client | None = None

    async def open(self) -> None:
        self._http = Http1Client(
            allowed=self.allowed,
            per_host_limit=self._per_host,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            total_timeout=TOTAL_TIMEOUT_SECONDS,
            max_body=MAX_BODY_BYTES,
        )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def post(self, url: str, *, headers: dict[str, str], body: bytes) -> SendResult:
        started = time.perf_counter()
        refused = refused_literal(url, self.allowed)
        if refused is not None:
            return _failed("refused_address", refused, started)
        if self._http is None:
            raise RuntimeError("the delivery client is not open")
        try:
            response = await self._http.post(url, headers=headers, body=body)
        except AddressRefused as exc:
            return _failed("refused_address", str(exc), started)
        except ConnectFailed as exc:
            return _failed("connection", f"cannot connect: {exc}", started)
        except TimeoutError:
            return _failed("timeout", f"no answer within {TOTAL_TIMEOUT_SECONDS:g} s", started)
        except (OSError, ValueError) as exc:
            return _failed("connection", f"{type(exc).__name__}: {exc}", started)
        return SendResult(
            outcome=AttemptOutcome(
                status=response.status, retry_after=response.headers.get("retry-after")
            ),
            body=response.body.decode("utf-8", "replace").replace(_NUL, "\ufffd"),
            truncated=response.truncated,
            latency_ms=(time.perf_counter() - started) * 1000.0,
            error="body read timed out" if response.stalled else None,
        )
