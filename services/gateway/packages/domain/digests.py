"""Digests declared by a client for the bytes it sends, and the ones we answer with.

Accepted on an upload (all optional; when several are given they must agree):
``X-Checksum-Sha256: <hex>`` (Artifactory's), ``Digest: sha-256=<base64>`` (RFC 3230),
``Content-Digest`` / ``Repr-Digest: sha-256=:<base64>:`` (RFC 9530). Answered with
``Digest`` and ``Repr-Digest`` of the whole artifact (also on a 206: they describe the
representation, not the part).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping

from shared.errors import BadRequest

_HEX = re.compile(r"^[0-9a-fA-F]{64}$")
_ENTRY = re.compile(r"^\s*([A-Za-z0-9-]+)\s*=\s*(.*?)\s*$")


class InvalidDigestHeader(BadRequest):
    code, title = "invalid_digest_header", "A digest header cannot be read"


def declared_sha256(headers: Mapping[str, str]) -> str | None:
    """The sha256 (hex) the request declares for its body, None when it declares none."""
    found: dict[str, str] = {}
    checksum = headers.get("X-Checksum-Sha256")
    if checksum is not None:
        if not _HEX.match(checksum.strip()):
            raise InvalidDigestHeader("X-Checksum-Sha256 must be 64 hexadecimal digits")
        found["X-Checksum-Sha256"] = checksum.strip().lower()
    for header, structured in (("Digest", False), ("Content-Digest", True), ("Repr-Digest", True)):
        value = headers.get(header)
        if value is not None:
            digest = _sha256_entry(header, value, structured=structured)
            if digest is not None:
                found[header] = digest
    if len(set(found.values())) > 1:
        raise InvalidDigestHeader(
            f"the digest headers disagree: {', '.join(sorted(found))}",
            extra={"declared": found},
        )
    return next(iter(found.values()), None)


def _sha256_entry(header: str, value: str, *, structured: bool) -> str | None:
    for entry in value.split(","):
        match = _ENTRY.match(entry)
        if match is None:
            raise InvalidDigestHeader(f"{header}: {entry.strip()[:100]!r} is not algorithm=value")
        algorithm, encoded = match.group(1).lower(), match.group(2)
        if algorithm != "sha-256":
            continue  # other algorithms are not checked
        if structured:
            if not (encoded.startswith(":") and encoded.endswith(":") and len(encoded) >= 2):
                raise InvalidDigestHeader(f"{header}: sha-256 must be a byte sequence (:…:)")
            encoded = encoded[1:-1]
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidDigestHeader(f"{header}: sha-256 is not base64") from None
        if len(raw) != 32:
            raise InvalidDigestHeader(f"{header}: sha-256 is {len(raw)} bytes, not 32")
        return raw.hex()
    return None


def digest_headers(sha256_hex: str) -> dict[str, str]:
    encoded = base64.b64encode(bytes.fromhex(sha256_hex)).decode()
    return {"Digest": f"sha-256={encoded}", "Repr-Digest": f"sha-256=:{encoded}:"}
