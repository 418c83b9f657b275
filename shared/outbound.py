"""The one check of every outbound connection Gatehouse makes: which URLs it may open and
which addresses their hosts may resolve to.

A URL given by a user (a git mirror's ``clone_url``, a webhook receiver's ``url``) could
otherwise make the server reach its own loopback services, the private network behind it
or a cloud's metadata endpoint (server-side request forgery). So:

* git clone URLs: ``https://``, ``ssh://`` and scp-like ``user@host:path`` only; ``file://``
  and local absolute paths only when ``git_allow_file_urls``; ``http://`` and every other
  scheme (``git://``, ``ext::`` …) refused; no credentials in the URL (an ssh user name such
  as ``git@`` is not one);
* the host is resolved and **every** address it resolves to must be public: loopback,
  private, link-local, multicast, unspecified, reserved, shared (CGNAT) and the cloud
  metadata addresses are refused unless inside ``outbound_allow_cidrs``. Numeric host
  spellings that the C resolver reads as IPv4 (``2130706433``, ``0x7f.1``, ``0177.0.0.1``)
  are read the same way here, and IPv4-mapped IPv6 addresses are judged by their IPv4;
* receiver URLs (webhooks, workflow triggers): ``http://`` and ``https://`` only, a host, no
  credentials; the same address rules (:func:`check_receiver_url`).

The parsing and address rules are pure; :func:`check_clone_url` and
:func:`check_receiver_url` add the resolution (in the resolver's thread pool). Checked again
right before each connection, because a name may resolve elsewhere by then (DNS rebinding).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import posixpath
import re
import socket
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from shared.errors import ValidationFailed
from shared.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack …
        ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
    }
)
# Shared address space (RFC 6598): not private to Python, but not on the internet either.
_SHARED = ipaddress.ip_network("100.64.0.0/10")

Reason = Literal[
    "malformed",
    "scheme",
    "credentials_in_url",
    "file_urls_disabled",
    "relative_path",
    "address",
    "unresolvable",
]


class OutboundRefused(ValidationFailed):
    """A URL or address Gatehouse will not connect to; ``reason`` says which rule."""

    code, title = "clone_url_refused", "The URL is not allowed"

    def __init__(self, detail: str, *, reason: Reason, field: str = "$.clone_url") -> None:
        super().__init__(
            detail,
            extra={
                "reason": reason,
                "errors": [{"field": field, "message": detail, "in": "body"}],
            },
        )
        self.reason = reason


@dataclass(frozen=True, kw_only=True)
class CloneUrl:
    """A clone URL as understood: its kind, the host to resolve (remote ones) and the
    local path (file ones)."""

    kind: Literal["https", "ssh", "file"]
    host: str | None = None
    port: int | None = None
    path: str | None = None


# ---- settings ------------------------------------------------------------------------------
def parse_cidrs(text: str) -> tuple[IPNetwork, ...]:
    """``outbound_allow_cidrs`` as networks (ValueError naming a bad entry)."""
    networks: list[IPNetwork] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ValueError(f"not a CIDR: {item!r} ({exc})") from None
    return tuple(networks)


def parse_credentials(text: str) -> dict[str, str]:
    """``git_credentials``: a JSON object of names to tokens, or ``name=token`` pairs
    separated by commas. Errors never quote a token."""
    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            loaded = json.loads(text)
        except ValueError:
            raise ValueError("GATEHOUSE_GIT_CREDENTIALS is not a valid JSON object") from None
        if not isinstance(loaded, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in loaded.items()
        ):
            raise ValueError("GATEHOUSE_GIT_CREDENTIALS must map names to non-empty strings")
        return dict(loaded)
    found: dict[str, str] = {}
    for index, pair in enumerate(text.split(",")):
        name, sep, token = pair.partition("=")
        name = name.strip()
        if not sep or not name or not token.strip():
            raise ValueError(f"GATEHOUSE_GIT_CREDENTIALS entry {index + 1} is not name=token")
        found[name] = token.strip()
    return found


# ---- addresses -----------------------------------------------------------------------------
def refused_because(address: IPAddress, allowed: Sequence[IPNetwork] = ()) -> str | None:
    """Why ``address`` may not be connected to, or None when it may."""
    candidates: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            # ::ffff:a.b.c.d is a.b.c.d on the wire (the v6 range itself counts as private).
            if _inside(address, allowed):
                return None
            candidates = [address.ipv4_mapped]
        if address.sixtofour is not None:
            candidates.append(address.sixtofour)
        if address.teredo is not None:
            candidates.append(address.teredo[1])
    if any(_inside(candidate, allowed) for candidate in candidates):
        return None
    for candidate in candidates:
        reason = _refusal(candidate)
        if reason is not None:
            return reason
    return None


def _inside(address: IPAddress, allowed: Sequence[IPNetwork]) -> bool:
    return any(address.version == net.version and address in net for net in allowed)


def _refusal(address: IPAddress) -> str | None:
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("shared (carrier-grade NAT)", address in _SHARED if address.version == 4 else False),
        ("not globally routable", not address.is_global),
    )
    for name, hit in checks:
        if hit:
            return f"a {name} address"
    return None


_INET_ATON_PART = re.compile(r"^(0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*)$")


def numeric_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """``host`` as the C resolver's ``inet_aton`` reads it (``127.1``, ``2130706433``,
    ``0x7f.0.0.1``, ``0177.0.0.1``), or None when it is a name."""
    parts = host.rstrip(".").split(".") if host else []
    if not 1 <= len(parts) <= 4 or not all(_INET_ATON_PART.match(p) for p in parts):
        return None
    try:
        values = [int(p, 0) if not _is_octal(p) else int(p, 8) for p in parts]
    except ValueError:
        return None
    # a, a.b (b: 24 bits), a.b.c (c: 16 bits), a.b.c.d
    widths = {1: [32], 2: [8, 24], 3: [8, 8, 16], 4: [8, 8, 8, 8]}[len(values)]
    number = 0
    for value, width in zip(values, widths, strict=True):
        if value >= 1 << width:
            return None
        number = (number << width) | value
    return ipaddress.IPv4Address(number)


def _is_octal(part: str) -> bool:
    return len(part) > 1 and part.startswith("0") and part[1] not in "xX"


def literal_address(host: str) -> IPAddress | None:
    """The address a host names literally (``[::1]``, ``::1``, ``10.0.0.1``, ``0x7f.1``)."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        pass
    return numeric_ipv4(bare)


# ---- clone URLs ----------------------------------------------------------------------------
_SCP_LIKE = re.compile(
    r"^(?:(?P<user>[^@/:]+)@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[^@/:\[\]]+):(?P<path>.*)$"
)
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_.])?$")


def parse_clone_url(url: str, *, allow_file: bool) -> CloneUrl:
    """What ``url`` names, by the rules above (:class:`OutboundRefused` otherwise)."""
    if not url or any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise OutboundRefused(
            "the URL is empty or contains spaces or control characters", reason="malformed"
        )
    if url.startswith("/"):
        return _file(url, allow_file=allow_file)
    helper = re.match(r"^([A-Za-z0-9][A-Za-z0-9+.-]*)::", url)
    if helper is not None:  # git's <transport>::<address>: a remote helper runs a program
        raise OutboundRefused(f"the remote helper {helper[1]!r}:: is not allowed", reason="scheme")
    if "://" not in url and url[:5].lower() == "file:":
        raise OutboundRefused("a file URL must be file:///absolute/path", reason="relative_path")
    if "://" not in url:
        scp = _SCP_LIKE.match(url)
        if scp is not None and "/" not in url.split(":", 1)[0] and len(scp["host"]) > 1:
            return _remote("ssh", scp["host"], None, user=scp["user"], password=None)
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", url):
            scheme = url.split(":", 1)[0].lower()
            if scheme == "file":
                raise OutboundRefused(
                    "a file URL must be file:///absolute/path", reason="relative_path"
                )
            raise OutboundRefused(f"the scheme {scheme!r} is not allowed", reason="scheme")
        raise OutboundRefused(
            "a local path must be absolute (and file URLs allowed)", reason="relative_path"
        )
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise OutboundRefused(f"the URL does not parse: {exc}", reason="malformed") from None
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise OutboundRefused(
                "a file URL must be file:///absolute/path (no host)", reason="relative_path"
            )
        if parts.query or parts.fragment:
            raise OutboundRefused("a file URL has no query or fragment", reason="malformed")
        return _file(urllib.parse.unquote(parts.path), allow_file=allow_file)
    if scheme == "http":
        raise OutboundRefused("http:// is not allowed: use https://", reason="scheme")
    if scheme not in ("https", "ssh"):
        raise OutboundRefused(f"the scheme {scheme!r} is not allowed", reason="scheme")
    host = parts.hostname or ""
    if "[" in parts.netloc:  # keep the brackets: the host is an IPv6 literal
        host = f"[{host}]"
    if scheme == "https" and (parts.username is not None or parts.password is not None):
        raise OutboundRefused(
            "credentials in the URL are not allowed: name a credential instead",
            reason="credentials_in_url",
        )
    kind: Literal["https", "ssh"] = "https" if scheme == "https" else "ssh"
    return _remote(kind, host, port, user=parts.username, password=parts.password)


def _remote(
    kind: Literal["https", "ssh"],
    host: str,
    port: int | None,
    *,
    user: str | None,
    password: str | None,
) -> CloneUrl:
    if password is not None:
        raise OutboundRefused(
            "credentials in the URL are not allowed: name a credential instead",
            reason="credentials_in_url",
        )
    if user is not None and not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", user):
        raise OutboundRefused("the ssh user name is not a plain name", reason="malformed")
    if not host:
        raise OutboundRefused("the URL names no host", reason="malformed")
    bare = host[1:-1] if host.startswith("[") else host
    if literal_address(host) is None and not _HOSTNAME.match(bare):
        raise OutboundRefused(f"not a host name: {host!r}", reason="malformed")
    return CloneUrl(kind=kind, host=bare.lower(), port=port)


def _file(path: str, *, allow_file: bool) -> CloneUrl:
    if not allow_file:
        raise OutboundRefused(
            "file URLs and local paths are disabled (GATEHOUSE_GIT_ALLOW_FILE_URLS)",
            reason="file_urls_disabled",
        )
    if not path.startswith("/"):
        raise OutboundRefused("a local path must be absolute", reason="relative_path")
    if ".." in path.split("/"):
        raise OutboundRefused("a local path may not contain '..'", reason="relative_path")
    return CloneUrl(kind="file", path=posixpath.normpath(path))


def check_addresses(
    host: str,
    addresses: Iterable[IPAddress],
    allowed: Sequence[IPNetwork],
    *,
    field: str = "$.clone_url",
    refusal: type[OutboundRefused] = OutboundRefused,
) -> None:
    """Every address ``host`` resolved to must be allowed (one bad one refuses it all:
    the connection may pick any)."""
    found = list(addresses)
    if not found:
        raise refusal(f"{host} resolves to no address", reason="unresolvable", field=field)
    for address in found:
        why = refused_because(address, allowed)
        if why is not None:
            raise refusal(
                f"{host} resolves to {address}, {why}; allow it with "
                "GATEHOUSE_OUTBOUND_ALLOW_CIDRS if it is meant",
                reason="address",
                field=field,
            )


async def resolve(
    host: str,
    port: int | None,
    *,
    timeout: float | None = None,  # noqa: ASYNC109 - bounds a resolver that does not answer
    field: str = "$.clone_url",
) -> list[IPAddress]:
    """The addresses of ``host`` (getaddrinfo in the loop's executor; ``timeout`` bounds a
    resolver that does not answer)."""
    literal = literal_address(host)
    if literal is not None:
        return [literal]
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            infos = await loop.getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OutboundRefused(
            f"{host} does not resolve: {exc}", reason="unresolvable", field=field
        ) from None
    except TimeoutError:
        raise OutboundRefused(
            f"{host} did not resolve within {timeout:g}s", reason="unresolvable", field=field
        ) from None
    out: list[IPAddress] = []
    for info in infos:
        sockaddr = info[4]
        # An IPv6 sockaddr may carry a scope ("fe80::1%eth0"): judged without it.
        out.append(ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0]))
    return out


async def check_clone_url(url: str, settings: Settings) -> CloneUrl:
    """``url`` parsed, its host resolved and every address allowed (see the module)."""
    target = parse_clone_url(url, allow_file=settings.git_allow_file_urls)
    if target.host is not None:
        allowed = parse_cidrs(settings.outbound_allow_cidrs)
        check_addresses(target.host, await resolve(target.host, target.port), allowed)
    return target


# ---- receiver URLs (webhooks, workflow triggers) ---------------------------------------------
class ReceiverUrlRefused(OutboundRefused):
    """A receiver URL Gatehouse will not deliver to; ``reason`` says which rule."""

    code, title = "receiver_url_refused", "The receiver URL is not allowed"


# A receiver that does not resolve within this is refused (a request waits for it).
RECEIVER_RESOLVE_TIMEOUT = 5.0


@dataclass(frozen=True, kw_only=True)
class ReceiverTarget:
    """Where a receiver URL leads: its host, port and the addresses it resolved to (all
    allowed)."""

    scheme: Literal["http", "https"]
    host: str
    port: int
    addresses: tuple[IPAddress, ...]


def parse_receiver_url(url: str, *, field: str = "$.url") -> tuple[str, str, int]:
    """``(scheme, host, port)`` of an ``http(s)://`` URL without credentials
    (:class:`ReceiverUrlRefused` otherwise). Finer shape rules belong to the caller's
    domain (webhook_fanout's ``domain/receivers.py``); these are the ones no outbound
    request may skip."""
    if not url or any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise ReceiverUrlRefused(
            "the URL is empty or contains spaces or control characters",
            reason="malformed",
            field=field,
        )
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ReceiverUrlRefused(
            f"the URL does not parse: {exc}", reason="malformed", field=field
        ) from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ReceiverUrlRefused(
            f"the scheme {scheme[:20]!r} is not allowed: use http:// or https://",
            reason="scheme",
            field=field,
        )
    if "@" in parts.netloc:
        raise ReceiverUrlRefused(
            "credentials in the URL are not allowed", reason="credentials_in_url", field=field
        )
    host = parts.hostname or ""
    if not host:
        raise ReceiverUrlRefused("the URL names no host", reason="malformed", field=field)
    return scheme, host.lower(), port or (443 if scheme == "https" else 80)


async def check_receiver_url(
    url: str,
    settings: Settings,
    *,
    field: str = "$.url",
    timeout: float = RECEIVER_RESOLVE_TIMEOUT,  # noqa: ASYNC109 - bounds the resolver
) -> ReceiverTarget:
    """``url`` parsed, its host resolved and every address allowed (the rules of the module:
    loopback, private, link-local, metadata … refused unless in ``outbound_allow_cidrs``).
    Call it when a receiver is configured and again before each connection."""
    scheme, host, port = parse_receiver_url(url, field=field)
    allowed = parse_cidrs(settings.outbound_allow_cidrs)
    try:
        addresses = await resolve(host, port, timeout=timeout, field=field)
    except OutboundRefused as exc:
        raise ReceiverUrlRefused(exc.detail, reason=exc.reason, field=field) from None
    check_addresses(host, addresses, allowed, field=field, refusal=ReceiverUrlRefused)
    return ReceiverTarget(
        scheme="https" if scheme == "https" else "http",
        host=host,
        port=port,
        addresses=tuple(addresses),
    )
