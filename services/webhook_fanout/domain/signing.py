"""Webhook secrets and signatures: Standard Webhooks and OrbitalReg.

**Standard Webhooks** (spec 1.0, symmetric): a secret is ``whsec_`` + base64 of 24 to 64
random bytes; the HMAC key is the decoded bytes. The signed content is
``{webhook-id}.{webhook-timestamp}.{body}``; ``webhook-signature`` is a space-separated list
of ``v1,<base64 HMAC-SHA256>``, one per secret in force, so a receiver holding either the new
or the previous secret verifies during a rotation.

**OrbitalReg**: ``X-Orbitalreg-Signature: sha256=<hex HMAC-SHA256 of the body>``, keyed with
the secret text exactly as the user holds it (UTF-8), which is what OrbitalReg receivers
compute. The header carries exactly one value: those receivers compare the whole header with
``"sha256=" + hexdigest``, so a list would break every one of them, even those holding the
right secret. During a rotation's grace period it is therefore signed with the *previous*
secret (the old secret stays valid for the grace period, as promised), and with the new one
from the moment the grace period ends; a receiver that wants to switch early accepts either.

A secret never appears in a repr, a str or an error message.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from typing import Final, Literal

from .errors import InvalidWebhookSecret, SignatureRejected

STANDARD_PREFIX: Final = "whsec_"
# The spec: "Random. At least 24 bytes (192 bits, 512 maximum)".
STANDARD_KEY_MIN_BYTES: Final = 24
STANDARD_KEY_MAX_BYTES: Final = 64
GENERATED_KEY_BYTES: Final = 32
# A free-form OrbitalReg secret (one a receiver already has): long enough not to be guessed,
# short enough to be a secret and not a document.
ORBITALREG_SECRET_MIN_CHARS: Final = 16
SECRET_MAX_CHARS: Final = 256
# The spec's recommended replay window for receivers.
DEFAULT_TOLERANCE: Final = dt.timedelta(minutes=5)
# An inbound webhook-signature header is attacker-controlled: bound the HMACs it can cost.
MAX_SIGNATURES_CHECKED: Final = 10
MAX_MESSAGE_ID_CHARS: Final = 256

SecretScheme = Literal["standard", "orbitalreg"]
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
# No full stop (it delimits the signed content) and nothing that is not visible ASCII.
_MESSAGE_ID = re.compile(r"[!-\-/-~]+")
_PRINTABLE_ASCII = re.compile(r"[!-~]+")


class WebhookSecret:
    """A subscription secret as its owner holds it (returned once, at creation or rotation).

    ``standard_key`` is the decoded ``whsec_`` key (None for a free-form OrbitalReg secret,
    which cannot sign Standard Webhooks); ``orbitalreg_key`` is the text's UTF-8 bytes.
    """

    __slots__ = ("_standard_key", "_text")

    def __init__(self, text: str, standard_key: bytes | None) -> None:
        self._text = text
        self._standard_key = standard_key

    @property
    def text(self) -> str:
        return self._text

    @property
    def standard_key(self) -> bytes | None:
        return self._standard_key

    @property
    def orbitalreg_key(self) -> bytes:
        return self._text.encode()

    def __repr__(self) -> str:
        return "WebhookSecret(<redacted>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WebhookSecret) and hmac.compare_digest(
            self._text.encode(), other._text.encode()
        )

    def __hash__(self) -> int:
        return hash(self._text)


def generate_secret(random_bytes: bytes) -> WebhookSecret:
    """A new ``whsec_`` secret from ``random_bytes`` (pass ``secrets.token_bytes(32)``)."""
    if not STANDARD_KEY_MIN_BYTES <= len(random_bytes) <= STANDARD_KEY_MAX_BYTES:
        raise ValueError(
            f"a secret needs {STANDARD_KEY_MIN_BYTES} to {STANDARD_KEY_MAX_BYTES} random bytes,"
            f" got {len(random_bytes)}"
        )
    text = STANDARD_PREFIX + base64.b64encode(random_bytes).decode("ascii")
    return WebhookSecret(text, bytes(random_bytes))


def parse_secret(text: str, *, scheme: SecretScheme) -> WebhookSecret:
    """A secret given by a client. ``standard`` needs a ``whsec_`` secret; ``orbitalreg``
    also takes a free-form one (16 to 256 visible ASCII characters), so a receiver keeps the
    secret it already has. Raises :class:`InvalidWebhookSecret` saying exactly what is wrong."""
    if not isinstance(text, str):
        raise InvalidWebhookSecret("the secret must be a string")
    if len(text) > SECRET_MAX_CHARS:
        raise InvalidWebhookSecret(
            f"the secret is {len(text)} characters long; at most {SECRET_MAX_CHARS} are allowed"
        )
    if text.startswith(STANDARD_PREFIX):
        return WebhookSecret(text, _standard_key(text[len(STANDARD_PREFIX) :]))
    if scheme == "standard":
        raise InvalidWebhookSecret(
            f"a Standard Webhooks secret starts with {STANDARD_PREFIX!r} followed by base64"
        )
    position = _first_invalid(text, _PRINTABLE_ASCII)
    if position is not None:
        raise InvalidWebhookSecret(
            f"the secret may hold only visible ASCII characters (no spaces or control"
            f" characters); character {position + 1} is not one"
        )
    if len(text) < ORBITALREG_SECRET_MIN_CHARS:
        raise InvalidWebhookSecret(
            f"the secret is {len(text)} characters long; at least"
            f" {ORBITALREG_SECRET_MIN_CHARS} are needed"
        )
    return WebhookSecret(text, None)


def _first_invalid(text: str, allowed: re.Pattern[str]) -> int | None:
    if allowed.fullmatch(text):
        return None
    match = allowed.match(text)
    return match.end() if match else 0


def _standard_key(encoded: str) -> bytes:
    if not encoded:
        raise InvalidWebhookSecret(f"the secret has nothing after {STANDARD_PREFIX!r}")
    if not _BASE64.fullmatch(encoded):
        position = _first_invalid(encoded.rstrip("="), re.compile(r"[A-Za-z0-9+/]+"))
        where = len(STANDARD_PREFIX) + (position if position is not None else len(encoded))
        raise InvalidWebhookSecret(
            f"the secret after {STANDARD_PREFIX!r} must be base64 (A-Z, a-z, 0-9, +, / and"
            f" trailing = padding); character {where + 1} is not"
        )
    unpadded = encoded.rstrip("=")
    if len(unpadded) % 4 == 1 or ("=" in encoded and len(encoded) % 4 != 0):
        raise InvalidWebhookSecret(
            f"the secret after {STANDARD_PREFIX!r} is not valid base64 (wrong length or padding)"
        )
    try:
        key = binascii.a2b_base64(unpadded + "=" * (-len(unpadded) % 4), strict_mode=True)
    except binascii.Error:
        raise InvalidWebhookSecret(
            f"the secret after {STANDARD_PREFIX!r} is not valid base64"
        ) from None
    if not STANDARD_KEY_MIN_BYTES <= len(key) <= STANDARD_KEY_MAX_BYTES:
        raise InvalidWebhookSecret(
            f"the secret decodes to {len(key)} bytes; Standard Webhooks needs"
            f" {STANDARD_KEY_MIN_BYTES} to {STANDARD_KEY_MAX_BYTES}"
        )
    return key


class SigningKeys:
    """The secrets of one subscription in force at one moment: the current one, and the
    previous one while a rotation's grace period lasts."""

    __slots__ = ("current", "previous")

    def __init__(self, current: WebhookSecret, previous: WebhookSecret | None = None) -> None:
        self.current = current
        self.previous = previous

    @classmethod
    def at(
        cls,
        now: dt.datetime,
        *,
        current: WebhookSecret,
        previous: WebhookSecret | None,
        previous_valid_until: dt.datetime | None,
    ) -> SigningKeys:
        """The keys in force at ``now``: the previous secret only before its grace ends."""
        in_grace = (
            previous is not None and previous_valid_until is not None and now < previous_valid_until
        )
        return cls(current, previous if in_grace else None)

    def standard(self) -> tuple[WebhookSecret, ...]:
        """Every secret a Standard Webhooks signature is made with, newest first."""
        return (self.current,) if self.previous is None else (self.current, self.previous)

    def orbitalreg(self) -> WebhookSecret:
        """The one secret the OrbitalReg header is signed with (see the module docstring)."""
        return self.previous if self.previous is not None else self.current

    def __repr__(self) -> str:
        return f"SigningKeys(rotating={self.previous is not None})"


def unix_seconds(moment: dt.datetime) -> int:
    """``webhook-timestamp``: whole seconds since the epoch of an aware datetime."""
    if moment.tzinfo is None:
        raise ValueError("a webhook timestamp needs an aware datetime")
    return int(moment.timestamp() // 1)


def _check_message_id(msg_id: str) -> None:
    if len(msg_id) > MAX_MESSAGE_ID_CHARS or not _MESSAGE_ID.fullmatch(msg_id):
        raise ValueError("a webhook id is 1 to 256 visible ASCII characters without a full stop")


def _standard_digest(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return hmac.new(key, signed, hashlib.sha256).digest()


def sign(msg_id: str, timestamp: int, body: bytes, secrets: Sequence[WebhookSecret]) -> str:
    """The ``webhook-signature`` header: ``v1,<base64>`` per secret, space-separated, in the
    order given (newest first)."""
    _check_message_id(msg_id)
    if timestamp < 0:
        raise ValueError("a webhook timestamp is seconds since the epoch")
    if not secrets:
        raise ValueError("a signature needs at least one secret")
    signatures = []
    for secret in secrets:
        key = secret.standard_key
        if key is None:
            raise InvalidWebhookSecret(
                f"a Standard Webhooks signature needs a {STANDARD_PREFIX!r} secret"
            )
        digest = _standard_digest(key, msg_id, timestamp, body)
        signatures.append("v1," + base64.b64encode(digest).decode("ascii"))
    return " ".join(signatures)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def verify(
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[WebhookSecret],
    *,
    now: dt.datetime,
    tolerance: dt.timedelta = DEFAULT_TOLERANCE,
) -> None:
    """Check a Standard Webhooks delivery: the three headers (any case), a timestamp within
    ``tolerance`` of ``now``, and one ``v1`` signature made by one of ``secrets``. Raises
    :class:`SignatureRejected` with the reason as its ``code``."""
    msg_id = _header(headers, "webhook-id")
    timestamp_text = _header(headers, "webhook-timestamp")
    signature_header = _header(headers, "webhook-signature")
    if not (msg_id and timestamp_text and signature_header):
        raise SignatureRejected(
            "webhook-id, webhook-timestamp and webhook-signature are all required",
            code="webhook_headers_missing",
        )
    if not timestamp_text.isascii() or not timestamp_text.isdigit() or len(timestamp_text) > 12:
        raise SignatureRejected(
            "webhook-timestamp must be whole seconds since the epoch",
            code="webhook_timestamp_invalid",
        )
    timestamp = int(timestamp_text)
    drift = timestamp - now.timestamp()
    if drift < -tolerance.total_seconds():
        raise SignatureRejected("webhook-timestamp is too old", code="webhook_timestamp_too_old")
    if drift > tolerance.total_seconds():
        raise SignatureRejected(
            "webhook-timestamp is in the future", code="webhook_timestamp_too_new"
        )
    if len(msg_id) > MAX_MESSAGE_ID_CHARS or not _MESSAGE_ID.fullmatch(msg_id):
        raise SignatureRejected("webhook-id is malformed", code="webhook_headers_missing")
    keys = [s.standard_key for s in secrets if s.standard_key is not None]
    expected = [_standard_digest(key, msg_id, timestamp, body) for key in keys]
    for entry in signature_header.split(" ")[:MAX_SIGNATURES_CHECKED]:
        version, _, encoded = entry.partition(",")
        if version != "v1":
            continue  # v1a (asymmetric) and unknown future versions are not ours to check
        try:
            given = binascii.a2b_base64(encoded, strict_mode=True)
        except binascii.Error:
            continue
        if any(hmac.compare_digest(given, digest) for digest in expected):
            return
    raise SignatureRejected("no signature matches", code="webhook_signature_mismatch")


ORBITALREG_PREFIX: Final = "sha256="


def orbitalreg_signature(body: bytes, secret: WebhookSecret) -> str:
    """``X-Orbitalreg-Signature``: ``sha256=`` + hex HMAC-SHA256 of the body."""
    return ORBITALREG_PREFIX + hmac.new(secret.orbitalreg_key, body, hashlib.sha256).hexdigest()


def verify_orbitalreg(body: bytes, header: str | None, secrets: Sequence[WebhookSecret]) -> None:
    """Check an ``X-Orbitalreg-Signature`` against any of ``secrets`` (a receiver switching
    secrets accepts both), in constant time per secret."""
    if not header:
        raise SignatureRejected(
            "X-Orbitalreg-Signature is required", code="webhook_headers_missing"
        )
    given = header.encode("utf-8", "replace")
    for secret in secrets:
        if hmac.compare_digest(given, orbitalreg_signature(body, secret).encode()):
            return
    raise SignatureRejected("no signature matches", code="webhook_signature_mismatch")
