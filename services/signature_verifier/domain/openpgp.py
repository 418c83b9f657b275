"""OpenPGP commit signatures checked with pgpy against uploaded keys.

Keys are parsed once into :class:`OpenPGPKey` (what verification needs: the pgpy key, per key
id whether it may sign and until when, the e-mails on its user ids) and looked up by the
signature's issuer key id, so one parse serves every commit a key signed.

pgpy's own ``PGPKey.verify`` refuses a key that is expired *now*; GitHub judges expiry at the
signature's creation time, so the cryptographic check here calls the key material directly and
expiry is decided from the self-signatures.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterable, Mapping, Sequence

import msgspec
import pgpy
from cryptography.hazmat.primitives import hashes
from pgpy.constants import KeyFlags, PubKeyAlgorithm, SignatureType

from services.signature_verifier.domain.model import Reason, SignedCommit, SigningKey, Verification

_SIGNING_ALGORITHMS = frozenset(
    {
        PubKeyAlgorithm.RSAEncryptOrSign,
        PubKeyAlgorithm.RSASign,
        PubKeyAlgorithm.DSA,
        PubKeyAlgorithm.ECDSA,
        PubKeyAlgorithm.EdDSA,
    }
)
_CERTIFICATIONS = frozenset(
    {
        SignatureType.Generic_Cert,
        SignatureType.Persona_Cert,
        SignatureType.Casual_Cert,
        SignatureType.Positive_Cert,
    }
)
# When several uploaded keys answer for the same key id, the best outcome wins.
_PREFERENCE: tuple[Reason, ...] = (
    "valid",
    "unverified_email",
    "bad_email",
    "expired_key",
    "not_signing_key",
    "invalid",
    "unknown_key",
)


class SubkeyFacts(msgspec.Struct, frozen=True, kw_only=True):
    """One (sub)key of an uploaded key: may it sign, and when does it expire (None: never)."""

    key_id: str
    can_sign: bool
    expires_at: dt.datetime | None


class OpenPGPKey:
    """An uploaded OpenPGP public key parsed once for verification."""

    __slots__ = ("emails", "facts", "key", "pgp", "primary_id")

    def __init__(self, key: SigningKey, pgp: pgpy.PGPKey) -> None:
        if not pgp.is_public:
            raise ValueError("an uploaded signing key is a public key")
        self.key = key
        self.pgp = pgp
        self.primary_id = pgp.fingerprint.keyid.upper()
        self.emails = frozenset(
            uid.email.lower() for uid in pgp.userids if uid.email and _self_signed(pgp, uid)
        )
        primary = SubkeyFacts(
            key_id=self.primary_id,
            can_sign=_primary_can_sign(pgp),
            expires_at=_primary_expiry(pgp),
        )
        facts = {primary.key_id: primary}
        for key_id, subkey in pgp.subkeys.items():
            binding = _latest(
                sig for sig in subkey.__sig__ if sig.type == SignatureType.Subkey_Binding
            )
            if binding is None or not _crypto_ok(pgp, binding, subkey):
                continue  # an unbound subkey answers for nothing
            expires = binding.key_expiration
            flags = binding.key_flags
            facts[key_id.upper()] = SubkeyFacts(
                key_id=key_id.upper(),
                can_sign=(KeyFlags.Sign in flags)
                if flags
                else subkey.key_algorithm in _SIGNING_ALGORITHMS,
                expires_at=subkey.created + expires if expires else None,
            )
        self.facts: Mapping[str, SubkeyFacts] = facts

    @classmethod
    def parse(cls, key: SigningKey, armored: str | bytes) -> OpenPGPKey:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pgp, _ = pgpy.PGPKey.from_blob(armored)
        return cls(key, pgp)


def verify_openpgp(
    signed: SignedCommit, keys_by_id: Mapping[str, Sequence[OpenPGPKey]]
) -> Verification:
    """GitHub's verdict on an OpenPGP-signed commit, given the uploaded keys by key id."""
    if signed.signature is None:
        return Verification(reason="unsigned")
    signature = parse_signature(signed.signature)
    if signature is None:
        return Verification(reason="malformed_signature")
    signer = signer_key_id(signature)
    if signer is None:
        return Verification(reason="unknown_key")
    candidates = [key for key in keys_by_id.get(signer, ()) if not key.key.revoked]
    if not candidates:
        return Verification(reason="unknown_key", signer_key_id=signer)
    verdicts = [(_judge(signed, signature, signer, key), key) for key in candidates]
    reason, key = min(verdicts, key=lambda pair: _PREFERENCE.index(pair[0]))
    return Verification(reason=reason, signer_key_id=signer, matched_key=key.key.key_store_id)


def parse_signature(armored: str) -> pgpy.PGPSignature | None:
    """The one signature an armoured block holds, or None when it does not parse."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            signature = pgpy.PGPSignature.from_blob(armored)
    except Exception:  # pgpy raises anything from ValueError to IndexError on garbage
        return None
    if not isinstance(signature, pgpy.PGPSignature) or signature.hash_algorithm is None:
        return None
    return signature


def signer_key_id(signature: pgpy.PGPSignature) -> str | None:
    """The issuer key id (upper hex, 16 digits) a signature names, from either subpacket."""
    signer = signature.signer or str(signature.signer_fingerprint or "")[-16:]
    return signer.replace(" ", "").upper() or None


def _judge(
    signed: SignedCommit, signature: pgpy.PGPSignature, signer: str, key: OpenPGPKey
) -> Reason:
    facts = key.facts.get(signer)
    if facts is None:
        return "unknown_key"
    pgp = key.pgp if facts.key_id == key.primary_id else key.pgp.subkeys[signer]
    # The signature's own facts (its creation time) are trusted only once it checks out.
    if not _crypto_ok(pgp, signature, signed.payload):
        return "invalid"
    if not facts.can_sign:
        return "not_signing_key"
    signed_at = signature.created
    primary = key.facts[key.primary_id]
    for limit in (facts.expires_at, primary.expires_at):
        if limit is not None and signed_at >= limit:
            return "expired_key"
    email = signed.committer_email.lower()
    if email not in key.emails:
        return "bad_email"
    verified = {e.email.lower() for e in key.key.account_emails if e.verified}
    return "valid" if email in verified else "unverified_email"


def _crypto_ok(key: pgpy.PGPKey, signature: pgpy.PGPSignature, subject: object) -> bool:
    """The bare cryptographic check of ``signature`` over ``subject`` by ``key``'s material,
    without pgpy's policy checks (expiry *now*, self-signature state)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            digest = getattr(hashes, signature.hash_algorithm.name)()
            result = key._key.verify(signature.hashdata(subject), signature.__sig__, digest)
    except Exception:  # a mismatched algorithm or unsupported hash is simply not valid
        return False
    return result is True


def _latest(signatures: Iterable[pgpy.PGPSignature]) -> pgpy.PGPSignature | None:
    return max(signatures, key=lambda sig: sig.created, default=None)


def _self_signed(pgp: pgpy.PGPKey, uid: pgpy.PGPUID) -> bool:
    """A user id counts only if the key itself certified it (anyone can append a user id)."""
    return any(
        sig.signer == pgp.fingerprint.keyid and _crypto_ok(pgp, sig, uid) for sig in uid.__sig__
    )


def _primary_self_signatures(pgp: pgpy.PGPKey) -> list[pgpy.PGPSignature]:
    keyid = pgp.fingerprint.keyid
    found = [sig for sig in pgp.__sig__ if sig.type == SignatureType.DirectlyOnKey]
    for uid in pgp.userids:
        found += [sig for sig in uid.__sig__ if sig.signer == keyid and sig.type in _CERTIFICATIONS]
    return [sig for sig in found if sig.signer == keyid]


def _primary_can_sign(pgp: pgpy.PGPKey) -> bool:
    latest = _latest(sig for sig in _primary_self_signatures(pgp) if sig.key_flags)
    if latest is None:  # old keys carry no flags: the algorithm decides
        return pgp.key_algorithm in _SIGNING_ALGORITHMS
    return KeyFlags.Sign in latest.key_flags


def _primary_expiry(pgp: pgpy.PGPKey) -> dt.datetime | None:
    latest = _latest(_primary_self_signatures(pgp))
    if latest is None or not latest.key_expiration:
        return None
    expires: dt.datetime = pgp.created + latest.key_expiration
    return expires
