"""The shape of a receiver URL: checked at creation, before anything is resolved.

Only ``http`` and ``https``, a host, no credentials (``user:pass@`` would be sent to whoever
answers, and shows up in logs), no fragment (never sent, so a URL carrying one is a mistake),
no whitespace or control characters, at most ``MAX_URL_CHARS``.

Where the URL *points* is not decided here. ``shared.outbound`` (the outbound-address policy
shared with the git mirrors, honouring ``GATEHOUSE_OUTBOUND_ALLOW_CIDRS``) resolves
:attr:`ReceiverUrl.host` and refuses loopback, private, link-local and metadata addresses, at
creation and again at every delivery; this module has no address rules of its own.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from typing import Final, Literal

import msgspec

from .errors import InvalidReceiverUrl

MAX_URL_CHARS: Final = 2048
# A DNS name is at most 253 characters (RFC 1035).
MAX_HOST_CHARS: Final = 253
_FORBIDDEN = re.compile(r"[\x00-\x20\x7f]")
_HOST_NAME = re.compile(
    r"(?=.{1,253}\Z)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?"
)
_NUMERIC_LABEL = re.compile(r"[0-9]+|0[xX][0-9A-Fa-f]*")
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


class ReceiverUrl(msgspec.Struct, frozen=True, kw_only=True):
    """A receiver URL that passed :func:`check_receiver_url`. ``host`` is lower case and
    ASCII (IDNA for an international name, no brackets for IPv6); ``address`` is set when
    the host is an IP literal, so the address policy can judge it without resolving."""

    url: str
    scheme: Literal["http", "https"]
    host: str
    port: int
    address: str | None = None


def check_receiver_url(url: object) -> ReceiverUrl:
    if not isinstance(url, str):
        raise InvalidReceiverUrl("the URL must be a string")
    if len(url) > MAX_URL_CHARS:
        raise InvalidReceiverUrl(
            f"the URL is {len(url)} characters long; at most {MAX_URL_CHARS} are allowed"
        )
    if _FORBIDDEN.search(url):
        raise InvalidReceiverUrl("the URL contains whitespace or control characters")
    if not url.isascii():
        raise InvalidReceiverUrl(
            "the URL must be ASCII: percent-encode the path, IDNA-encode (xn--) the host"
        )
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:
        raise InvalidReceiverUrl(f"the URL cannot be read: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise InvalidReceiverUrl(
            f"the URL scheme must be http or https, not {parts.scheme[:20]!r}"
            if parts.scheme
            else "the URL must be absolute (http:// or https://)"
        )
    if "#" in url:
        raise InvalidReceiverUrl("the URL must not have a fragment (#…): it is never sent")
    if "@" in parts.netloc:
        raise InvalidReceiverUrl(
            "the URL must not carry credentials (user:password@); the signature authenticates"
            " deliveries"
        )
    host = _host(parts)
    try:
        port = parts.port
    except ValueError:
        raise InvalidReceiverUrl("the URL's port must be a number from 1 to 65535") from None
    if port == 0:
        raise InvalidReceiverUrl("the URL's port must be a number from 1 to 65535")
    address = _literal_address(host)
    return ReceiverUrl(
        url=url,
        scheme=scheme,  # type: ignore[arg-type]
        host=host,
        port=port if port is not None else _DEFAULT_PORTS[scheme],
        address=address,
    )


def _host(parts: urllib.parse.SplitResult) -> str:
    raw = parts.hostname
    if not raw:
        raise InvalidReceiverUrl("the URL has no host")
    if "%" in raw:
        raise InvalidReceiverUrl("the URL's host must not carry an IPv6 zone (%…)")
    if len(raw) > MAX_HOST_CHARS:
        raise InvalidReceiverUrl(f"the URL's host is longer than {MAX_HOST_CHARS} characters")
    if _literal_address(raw) is not None:
        return raw.lower()
    if not _HOST_NAME.fullmatch(raw):
        raise InvalidReceiverUrl("the URL's host is not a DNS name or an IP address")
    if _NUMERIC_LABEL.fullmatch(raw.rstrip(".").rsplit(".", 1)[-1]):
        # No top-level domain is numeric; resolvers read 2130706433, 0x7f.1 or 127.1 as
        # IPv4 addresses (127.0.0.1), which would hide an address from a reader of the URL.
        raise InvalidReceiverUrl(
            "the URL's host looks like an IPv4 address but is not one in dotted-quad form"
        )
    return raw.lower()


def _literal_address(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None
