"""Split a raw git commit object into the bytes that were signed and the signature.

The payload is exactly what git hands to gpg / ssh-keygen when it verifies a commit: the object
with its signature headers (``gpgsig`` and ``gpgsig-sha256``, each with its continuation lines)
cut out, every other byte kept as stored.
"""

from __future__ import annotations

import datetime as dt
import re

from services.signature_verifier.domain.model import SignatureKind, SignedCommit

# git stores the signature of the repository's own hash algorithm in `gpgsig` (SHA-1 object
# format); `gpgsig-sha256` belongs to the SHA-256 format. Both are left out of the payload, as
# git does, so that a commit signed for either format verifies.
_SIGNATURE_HEADERS = (b"gpgsig", b"gpgsig-sha256")
_COMMITTER = re.compile(
    rb"^(?P<name>.*?) ?<(?P<email>[^<>]*)> (?P<seconds>-?\d+) (?P<offset>[+-]\d{4})$"
)
_ARMOUR_KINDS: tuple[tuple[str, SignatureKind], ...] = (
    ("-----BEGIN PGP SIGNATURE-----", "openpgp"),
    ("-----BEGIN SSH SIGNATURE-----", "ssh"),
    ("-----BEGIN SIGNED MESSAGE-----", "x509"),
    ("-----BEGIN CERTIFICATE-----", "x509"),
)


class MalformedCommit(ValueError):
    """The bytes are not a git commit object this module can read."""


def split_commit(raw: bytes) -> SignedCommit:
    """The commit object ``raw`` (as ``git cat-file commit`` prints it) split into its signed
    payload and signature; raises :class:`MalformedCommit` when it is not a commit object."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise MalformedCommit(f"a commit object is bytes, not {type(raw).__name__}")
    raw = bytes(raw)
    header_end = raw.find(b"\n\n")
    header_block = raw if header_end < 0 else raw[: header_end + 1]
    if not header_block.startswith(b"tree "):
        raise MalformedCommit("a commit object starts with its `tree` header")
    if header_end < 0 and not raw.endswith(b"\n"):
        raise MalformedCommit("the commit object's headers are not terminated by a newline")

    payload_parts: list[bytes] = []
    signatures: dict[bytes, list[bytes]] = {}
    current_signature: list[bytes] | None = None
    committer: bytes | None = None
    for line in header_block.splitlines(keepends=True):
        if line.startswith(b" "):
            if current_signature is not None:
                current_signature.append(line[1:])
            else:
                if not payload_parts:
                    raise MalformedCommit("a continuation line before any header")
                payload_parts.append(line)
            continue
        name, _, value = line.partition(b" ")
        if name in _SIGNATURE_HEADERS:
            current_signature = signatures.setdefault(name, [])
            if current_signature:
                raise MalformedCommit(f"the `{name.decode()}` header appears twice")
            current_signature.append(value)
            continue
        current_signature = None
        if name == b"committer":
            if committer is not None:
                raise MalformedCommit("the `committer` header appears twice")
            committer = value.rstrip(b"\n")
        payload_parts.append(line)
    if committer is None:
        raise MalformedCommit("the commit object has no `committer` header")
    if header_end >= 0:
        payload_parts.append(raw[header_end + 1 :])

    email, committed_at = _parse_committer(committer)
    stored = signatures.get(b"gpgsig") or signatures.get(b"gpgsig-sha256")
    signature = b"".join(stored).decode("utf-8", "replace") if stored else None
    return SignedCommit(
        payload=b"".join(payload_parts),
        signature=signature,
        kind=signature_kind(signature) if signature is not None else None,
        committer_email=email,
        committed_at=committed_at,
    )


def signature_kind(signature: str) -> SignatureKind:
    """Which scheme an armoured signature block belongs to, by its armour line."""
    head = signature.lstrip()
    for armour, kind in _ARMOUR_KINDS:
        if head.startswith(armour):
            return kind
    return "unknown"


def _parse_committer(value: bytes) -> tuple[str, dt.datetime]:
    match = _COMMITTER.match(value)
    if match is None:
        raise MalformedCommit("the `committer` header is not `name <email> seconds ±hhmm`")
    offset = match["offset"]
    sign = -1 if offset.startswith(b"-") else 1
    hours, minutes = int(offset[1:3]), int(offset[3:5])
    if minutes >= 60:
        raise MalformedCommit("the committer time's offset has more than 59 minutes")
    zone = dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))
    try:
        when = dt.datetime.fromtimestamp(int(match["seconds"]), tz=zone)
    except (OverflowError, OSError, ValueError) as exc:
        raise MalformedCommit("the committer time is out of range") from exc
    return match["email"].decode("utf-8", "replace"), when
