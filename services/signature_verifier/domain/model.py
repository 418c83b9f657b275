"""Types the signature-verifier's domain shares: the verification reasons (GitHub's exact
strings), a verification outcome, and a signing key as the verifier sees it.

Pure and frozen; parsing and checking live in ``commits.py`` (commit objects), ``openpgp.py``
(pgpy), ``ssh.py`` (SSH signatures, ``cryptography``) and ``keys.py`` (uploaded keys).
"""

from __future__ import annotations

import datetime as dt
from typing import Literal, get_args

import msgspec

# GitHub's `verification.reason` values this service answers (issue 10).
Reason = Literal[
    "valid",
    "unsigned",
    "unknown_key",
    "unverified_email",
    "bad_email",
    "expired_key",
    "not_signing_key",
    "malformed_signature",
    "invalid",
    "unknown_signature_type",
]
REASONS: tuple[Reason, ...] = get_args(Reason)
# A real signature block is a few KiB (an RSA 4096 OpenPGP signature with its armour is under
# 1 KiB); anything past this is not parsed at all, and the commits API leaves it out.
MAX_SIGNATURE_CHARS = 64 * 1024
SignatureKind = Literal["openpgp", "ssh", "x509", "unknown"]


class SignedCommit(msgspec.Struct, frozen=True, kw_only=True):
    """A raw commit object split into what was signed and the signature."""

    # The commit object exactly as stored, without the `gpgsig` header (the signed bytes).
    payload: bytes
    # The armoured signature exactly as stored (continuation spaces removed), or None.
    signature: str | None
    kind: SignatureKind | None
    committer_email: str
    committed_at: dt.datetime


class Verification(msgspec.Struct, frozen=True, kw_only=True):
    """What a signature check concluded. ``verified`` is true only for ``valid``."""

    reason: Reason
    # The key that made the signature, as the signature names it (OpenPGP key id in upper
    # hex, 16 digits; SSH: the key's SHA256 fingerprint), when known.
    signer_key_id: str | None = None
    # The uploaded key it was checked against (its id in the key store), when one matched.
    matched_key: str | None = None

    @property
    def verified(self) -> bool:
        return self.reason == "valid"


class KeyEmail(msgspec.Struct, frozen=True, kw_only=True):
    email: str
    verified: bool


class SigningKey(msgspec.Struct, frozen=True, kw_only=True):
    """An uploaded key as verification needs it: which key ids it answers for (primary and
    subkeys, OpenPGP; the fingerprint, SSH), whether each may sign and until when, and the
    e-mail addresses of its owner's account with their verified state."""

    key_store_id: str
    kind: Literal["openpgp", "ssh"]
    # Upper-case 16-hex-digit key ids (OpenPGP) or "SHA256:..." fingerprints (SSH).
    key_ids: tuple[str, ...]
    # The owner's account e-mails (verified or not); for OpenPGP the key's own user ids'
    # e-mails are read from the key itself.
    account_emails: tuple[KeyEmail, ...] = ()
    revoked: bool = False
