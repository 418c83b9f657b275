"""A commit's texts and its ``verification`` object, from what the git adapter read and
the verification cache's row. Pure.

Text: git stores bytes. Messages and identities are decoded with the commit's ``encoding``
header (UTF-8 when absent or unknown to Python), as ``git log`` re-encodes them; bytes that
do not decode become U+FFFD. A JSON string cannot carry arbitrary bytes, so a signature or
payload that is not valid UTF-8 is shown with U+FFFD in place of the bad bytes — byte-exact
for every UTF-8 commit (every commit git writes by default), the verifier reading the
object itself, never this text.
"""

from __future__ import annotations

import codecs
import datetime as dt

import msgspec

from contracts.rpc.signatures import GitPerson, VerificationReason, VerificationView
from services.signature_verifier.domain.model import MAX_SIGNATURE_CHARS, REASONS

_LATEST = dt.datetime.max.replace(tzinfo=dt.UTC)
_EARLIEST = dt.datetime.min.replace(tzinfo=dt.UTC)


class VerificationRow(msgspec.Struct, frozen=True, kw_only=True):
    """The cache's row of one commit (``verifications``)."""

    verified: bool
    reason: str
    verified_at: dt.datetime | None


class Signed(msgspec.Struct, frozen=True, kw_only=True):
    """A commit's signature block (continuation spaces removed, as git reads it) and the
    bytes it signs: the object without its signature headers."""

    signature: str
    payload: bytes


def decode(raw: bytes, encoding: str | None = None) -> str:
    codec = "utf-8"
    if encoding:
        try:
            codec = codecs.lookup(encoding).name
        except LookupError:
            codec = "utf-8"
    return raw.decode(codec, "replace")


def split_message(message: str) -> tuple[str, str]:
    """(subject, body): the first line, and the rest without the blank line that separates
    them (and without surrounding whitespace)."""
    subject, _, rest = message.partition("\n")
    return subject.rstrip("\r"), rest.strip()


def when(seconds: int, offset_minutes: int) -> dt.datetime:
    """A git time in the offset the commit recorded; an offset Python cannot hold (a day or
    more) is shown in UTC, a time out of Python's range clamped to it."""
    try:
        zone = dt.timezone(dt.timedelta(minutes=offset_minutes))
    except ValueError:
        zone = dt.UTC
    try:
        return dt.datetime.fromtimestamp(seconds, tz=zone)
    except (OverflowError, OSError, ValueError):
        return _LATEST if seconds > 0 else _EARLIEST


def person(
    name: bytes, email: bytes, seconds: int, offset_minutes: int, encoding: str | None
) -> GitPerson:
    return GitPerson(
        name=decode(name, encoding),
        email=decode(email, encoding),
        # In UTC ("…Z"), as GitHub's commits API answers; `when` keeps the offset for
        # callers that want git's view.
        date=when(seconds, offset_minutes).astimezone(dt.UTC),
    )


def author_matches(needle: str, name: str, email: str) -> bool:
    """``author=``: a case-insensitive substring of the author's name or e-mail."""
    folded = needle.casefold()
    return folded in name.casefold() or folded in email.casefold()


def verification(signed: Signed | None, row: VerificationRow | None) -> VerificationView:
    """The ``verification`` object: the cached verdict when one is stamped (a row whose reason
    is ``unsigned`` — its key was revoked — reads as no row), the signature and payload
    whenever the commit carries a signature — unless either is longer than
    ``MAX_SIGNATURE_CHARS``: then both are null (the reason still says what the verifier
    found, ``malformed_signature`` for an oversized block), so that a page of such commits
    stays far below the bus's 1 MiB reply limit."""
    signature = signed.signature if signed else None
    payload = decode(signed.payload) if signed else None
    if (signature is not None and len(signature) > MAX_SIGNATURE_CHARS) or (
        payload is not None and len(payload) > MAX_SIGNATURE_CHARS
    ):
        signature = payload = None
    if row is None or row.reason == "unsigned" or row.reason not in REASONS:
        return VerificationView(
            verified=False,
            reason="unsigned",
            signature=signature,
            payload=payload,
            verified_at=None,
        )
    reason: VerificationReason = row.reason  # type: ignore[assignment]
    return VerificationView(
        verified=row.verified and reason == "valid",
        reason=reason,
        signature=signature,
        payload=payload,
        verified_at=row.verified_at,
    )
