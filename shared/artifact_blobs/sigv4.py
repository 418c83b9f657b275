"""AWS Signature Version 4 for S3 requests: the Authorization header of a request whose
payload is sent in one piece (signed payload, or ``UNSIGNED-PAYLOAD``).

Pure: no I/O and no clock (the time is passed in), so the AWS documentation's worked examples
are its unit tests (tests/unit/test_sigv4.py). S3 differs from the other services in one
place: the path is URI-encoded once, not twice.

Nothing here keeps or prints the secret key: :class:`Credentials` hides it from ``repr``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote

ALGORITHM = "AWS4-HMAC-SHA256"
# sha256 of the empty string: the payload hash of GET, HEAD and DELETE.
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    region: str = "us-east-1"
    service: str = "s3"


@dataclass(frozen=True)
class Signature:
    """One signed request: the headers to send and, for tests and diagnostics, the
    intermediate strings AWS documents for every example."""

    headers: dict[str, str]
    canonical_request: str
    string_to_sign: str
    signature: str


def uri_encode(text: str, *, keep_slash: bool) -> str:
    """AWS's UriEncode: every byte except the unreserved ``A-Za-z0-9-_.~`` as ``%XX``
    (upper-case hex, UTF-8), ``/`` kept in paths. A space is ``%20``, never ``+``."""
    return quote(text, safe="/" if keep_slash else "")


def canonical_query(params: Iterable[tuple[str, str]]) -> str:
    """Name/value pairs encoded, then sorted by name (then value); a bare name is ``name=``."""
    encoded = sorted(
        (uri_encode(name, keep_slash=False), uri_encode(value, keep_slash=False))
        for name, value in params
    )
    return "&".join(f"{name}={value}" for name, value in encoded)


def amz_date(now: datetime) -> str:
    if now.tzinfo is None:
        raise ValueError("a signing time must be timezone-aware")
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _canonical_headers(headers: Mapping[str, str]) -> tuple[str, str]:
    """(canonical header block, signed header list): names lower-cased and sorted, values
    trimmed with inner runs of spaces collapsed."""
    merged: dict[str, list[str]] = {}
    for name, value in headers.items():
        merged.setdefault(name.strip().lower(), []).append(" ".join(value.split()))
    names = sorted(merged)
    block = "".join(f"{name}:{','.join(merged[name])}\n" for name in names)
    return block, ";".join(names)


def canonical_request(
    method: str,
    encoded_path: str,
    query: str,
    headers: Mapping[str, str],
    payload_sha256: str,
) -> tuple[str, str]:
    """(canonical request, signed headers) of a request whose path is already encoded."""
    block, signed = _canonical_headers(headers)
    text = "\n".join([method.upper(), encoded_path or "/", query, block, signed, payload_sha256])
    return text, signed


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def signing_key(secret_access_key: str, day: str, region: str, service: str) -> bytes:
    key = _hmac(("AWS4" + secret_access_key).encode(), day)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def sign(
    credentials: Credentials,
    *,
    method: str,
    encoded_path: str,
    query: str,
    headers: Mapping[str, str],
    payload_sha256: str,
    timestamp: str,
) -> Signature:
    """Sign exactly ``headers`` (which must hold ``host`` and the ``x-amz-date`` equal to
    ``timestamp``); the result's headers are the given ones plus ``Authorization``."""
    creq, signed = canonical_request(method, encoded_path, query, headers, payload_sha256)
    day = timestamp[:8]
    scope = f"{day}/{credentials.region}/{credentials.service}/aws4_request"
    to_sign = "\n".join([ALGORITHM, timestamp, scope, hashlib.sha256(creq.encode()).hexdigest()])
    key = signing_key(credentials.secret_access_key, day, credentials.region, credentials.service)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    authorization = (
        f"{ALGORITHM} Credential={credentials.access_key_id}/{scope},"
        f"SignedHeaders={signed},Signature={signature}"
    )
    return Signature(
        headers={**headers, "Authorization": authorization},
        canonical_request=creq,
        string_to_sign=to_sign,
        signature=signature,
    )


def sign_s3(
    credentials: Credentials,
    *,
    method: str,
    host: str,
    path: str,
    query: Iterable[tuple[str, str]] = (),
    headers: Mapping[str, str] | None = None,
    payload_sha256: str = EMPTY_SHA256,
    now: datetime,
) -> tuple[str, str, Signature]:
    """Sign an S3 request to ``host`` for the raw (unencoded) ``path`` and query pairs.

    Returns (encoded path, canonical query, signature): send the request to exactly that
    path and query (the canonical query is a valid query string) with the signature's
    headers, which add ``Host``, ``x-amz-date``, ``x-amz-content-sha256`` and
    ``Authorization`` to ``headers`` (all of which are signed).
    """
    timestamp = amz_date(now)
    encoded_path = uri_encode(path if path.startswith("/") else "/" + path, keep_slash=True)
    canonical = canonical_query(query)
    to_sign = {
        **(headers or {}),
        "Host": host,
        "x-amz-content-sha256": payload_sha256,
        "x-amz-date": timestamp,
    }
    signature = sign(
        credentials,
        method=method,
        encoded_path=encoded_path,
        query=canonical,
        headers=to_sign,
        payload_sha256=payload_sha256,
        timestamp=timestamp,
    )
    return encoded_path, canonical, signature
