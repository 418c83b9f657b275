"""Uploaded signing keys: an armoured OpenPGP public key or an SSH public key becomes the
GitHub-shaped view the API answers and the ``SigningKey`` verification needs.

Pure: no I/O, no clock (``now`` and ``created_at`` are passed in). Every refusal is a
``KeyRefused`` with a stable ``code`` (the service maps it to a 422).

Hostile input is refused before pgpy sees it: the armour is bounded in length, then
de-armoured and its packet headers walked (cheap: headers only, bodies skipped) to count
user ids, spot secret-key packets and a second primary key. Only a block that passes is
handed to pgpy, so a 50 MB armour or 10,000 user ids cost a length check or one header walk.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import Literal

import msgspec

from services.signature_verifier.domain.model import KeyEmail, SigningKey

# 1 MiB of armour holds a 16384-bit RSA key with hundreds of signatures; a real key is a few
# KiB. Bigger is refused before it is de-armoured.
MAX_ARMORED_KEY_CHARS = 1024 * 1024
# GnuPG keyrings rarely carry more than a handful of user ids; 100 is generous.
MAX_USER_IDS = 100
MAX_SUBKEYS = 50
# Self-signatures are checked cryptographically, so their number is bounded too; real keys
# carrying many third-party certifications stay well under it.
MAX_SIGNATURES = 2000
# An SSH public key line: RSA 16384 is ~2.8 KiB of base64; 16 KiB leaves room for a comment.
MAX_SSH_KEY_CHARS = 16 * 1024
MIN_SSH_RSA_BITS = 2048

RefusalCode = Literal[
    "malformed_key",
    "secret_key",
    "multiple_keys",
    "no_user_id",
    "key_too_large",
    "duplicate_key",
    "unsupported_key_type",
    "weak_key",
]


class KeyRefused(Exception):
    """An uploaded key the service will not keep. Permanent: the same upload fails again."""

    transient = False

    def __init__(self, code: RefusalCode, detail: str) -> None:
        super().__init__(detail)
        self.code: RefusalCode = code
        self.detail = detail


# --- GitHub-shaped views ---------------------------------------------------------------


class GpgKeyEmail(msgspec.Struct, frozen=True, kw_only=True):
    email: str
    verified: bool


class GpgSubkeyView(msgspec.Struct, frozen=True, kw_only=True):
    # The store assigns subkey ids when it persists them; None until then.
    id: int | str | None
    primary_key_id: int | str
    key_id: str
    public_key: str
    emails: tuple[GpgKeyEmail, ...]
    subkeys: tuple[()]
    can_sign: bool
    can_certify: bool
    can_encrypt_comms: bool
    can_encrypt_storage: bool
    created_at: str
    expires_at: str | None
    raw_key: str | None
    revoked: bool


class GpgKeyView(msgspec.Struct, frozen=True, kw_only=True):
    """GitHub's GPG key response (``GET /user/gpg_keys/{id}``)."""

    id: int | str
    name: str | None
    primary_key_id: None
    key_id: str
    public_key: str
    emails: tuple[GpgKeyEmail, ...]
    subkeys: tuple[GpgSubkeyView, ...]
    can_sign: bool
    can_certify: bool
    can_encrypt_comms: bool
    can_encrypt_storage: bool
    created_at: str
    expires_at: str | None
    raw_key: str
    revoked: bool


class SshSigningKeyView(msgspec.Struct, frozen=True, kw_only=True):
    """GitHub's SSH signing key response, plus the fingerprint verification matches on."""

    id: int | str
    key: str
    title: str
    created_at: str
    fingerprint: str


def _timestamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- OpenPGP: cheap structural pass before pgpy --------------------------------------------

_ARMOR_BEGIN = re.compile(r"-----BEGIN PGP ([A-Z ]+)-----")
_PUBLIC_KEY_PACKET, _PUBLIC_SUBKEY_PACKET = 6, 14
_SECRET_KEY_PACKETS = frozenset({5, 7})
_USER_ID_PACKET = 13
_SIGNATURE_PACKET = 2


class _Packet(msgspec.Struct, frozen=True):
    tag: int
    raw: bytes  # header and body, as uploaded
    body: bytes


def _dearmor(armored: str) -> bytes:
    begin = _ARMOR_BEGIN.search(armored)
    if begin is None:
        raise KeyRefused("malformed_key", "not an ASCII-armoured OpenPGP public key block")
    if "PRIVATE KEY" in begin.group(1) or "SECRET KEY" in begin.group(1):
        raise KeyRefused("secret_key", "this is a private key: upload the public key")
    if begin.group(1) != "PUBLIC KEY BLOCK":
        raise KeyRefused("malformed_key", f"expected a PUBLIC KEY BLOCK, got {begin.group(1)}")
    end = armored.find(f"-----END PGP {begin.group(1)}-----", begin.end())
    if end < 0:
        raise KeyRefused("malformed_key", "the armour has no END line (truncated?)")
    lines = armored[begin.end() : end].strip("\r\n").splitlines()
    # Armour headers (``Version: …``) run up to the first blank line, when present.
    if any(not line.strip() for line in lines):
        first_blank = next(i for i, line in enumerate(lines) if not line.strip())
        if all(":" in line for line in lines[:first_blank]):
            lines = lines[first_blank + 1 :]
    body = [line.strip() for line in lines if line.strip()]
    checksum = None
    if body and body[-1].startswith("=") and len(body[-1]) == 5:
        checksum = body.pop()
    try:
        data = base64.b64decode("".join(body), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyRefused("malformed_key", "the armour's base64 is corrupt") from exc
    if checksum is not None:
        try:
            expected = int.from_bytes(base64.b64decode(checksum[1:], validate=True), "big")
        except (binascii.Error, ValueError) as exc:
            raise KeyRefused("malformed_key", "the armour's checksum is corrupt") from exc
        if _crc24(data) != expected:
            raise KeyRefused("malformed_key", "the armour's checksum does not match (truncated?)")
    if not data:
        raise KeyRefused("malformed_key", "the armour holds no data")
    return data


def _crc24(data: bytes) -> int:
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def _packets(data: bytes) -> Iterator[_Packet]:
    """Walk OpenPGP packet headers (RFC 4880 §4.2). Bodies are sliced, never parsed."""
    offset = 0
    truncated = KeyRefused("malformed_key", "the key's packets are truncated or corrupt")
    while offset < len(data):
        start = offset
        header = data[offset]
        if not header & 0x80:
            raise truncated
        if header & 0x40:  # new format
            tag = header & 0x3F
            offset += 1
            if offset >= len(data):
                raise truncated
            first = data[offset]
            if first < 192:
                length, offset = first, offset + 1
            elif first < 224:
                if offset + 1 >= len(data):
                    raise truncated
                length, offset = ((first - 192) << 8) + data[offset + 1] + 192, offset + 2
            elif first == 255:
                length, offset = int.from_bytes(data[offset + 1 : offset + 5], "big"), offset + 5
            else:  # partial body lengths never occur in key material
                raise truncated
        else:  # old format
            tag = (header >> 2) & 0x0F
            size = (1, 2, 4, 0)[header & 0x03]
            if size == 0:
                raise truncated
            length = int.from_bytes(data[offset + 1 : offset + 1 + size], "big")
            offset += 1 + size
        if offset + length > len(data):
            raise truncated
        yield _Packet(tag, data[start : offset + length], data[offset : offset + length])
        offset += length


def _v4_key_id(body: bytes) -> str | None:
    if not body or body[0] != 4:
        return None
    # RFC 4880 §12.2: a v4 key id is the low 64 bits of the SHA-1 fingerprint.
    digest = hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).digest()
    return digest[-8:].hex().upper()


def _screen(data: bytes) -> dict[str, bytes]:
    """Refuse what the packet headers already tell; return key id → raw key packet."""
    primaries = user_ids = subkeys = signatures = 0
    key_packets: dict[str, bytes] = {}
    for packet in _packets(data):
        if packet.tag in _SECRET_KEY_PACKETS:
            raise KeyRefused("secret_key", "this is a private key: upload the public key")
        if packet.tag == _PUBLIC_KEY_PACKET:
            primaries += 1
            if primaries > 1:
                raise KeyRefused("multiple_keys", "the block holds more than one key: upload one")
        elif packet.tag == _PUBLIC_SUBKEY_PACKET:
            subkeys += 1
            if subkeys > MAX_SUBKEYS:
                raise KeyRefused("key_too_large", f"more than {MAX_SUBKEYS} subkeys")
        elif packet.tag == _SIGNATURE_PACKET:
            signatures += 1
            if signatures > MAX_SIGNATURES:
                raise KeyRefused("key_too_large", f"more than {MAX_SIGNATURES} signatures")
        elif packet.tag == _USER_ID_PACKET:
            user_ids += 1
            if user_ids > MAX_USER_IDS:
                raise KeyRefused("key_too_large", f"more than {MAX_USER_IDS} user ids")
        if packet.tag in (_PUBLIC_KEY_PACKET, _PUBLIC_SUBKEY_PACKET):
            key_id = _v4_key_id(packet.body)
            if key_id is not None:
                key_packets[key_id] = packet.raw
    if primaries == 0:
        raise KeyRefused("malformed_key", "the block holds no public key")
    if user_ids == 0:
        raise KeyRefused("no_user_id", "the key has no user id: add one with your e-mail")
    return key_packets


# --- OpenPGP: pgpy ---------------------------------------------------------------------


class _Capabilities(msgspec.Struct, frozen=True):
    can_sign: bool
    can_certify: bool
    can_encrypt_comms: bool
    can_encrypt_storage: bool


def _capabilities(
    flags: Iterable[object] | None, algorithm: object, *, primary: bool
) -> _Capabilities:
    from pgpy.constants import KeyFlags, PubKeyAlgorithm

    if flags:
        present = set(flags)
        return _Capabilities(
            can_sign=KeyFlags.Sign in present,
            can_certify=KeyFlags.Certify in present,
            can_encrypt_comms=KeyFlags.EncryptCommunications in present,
            can_encrypt_storage=KeyFlags.EncryptStorage in present,
        )
    # No key-flags subpacket (old keys): what the algorithm can do.
    signs = algorithm in {
        PubKeyAlgorithm.RSAEncryptOrSign,
        PubKeyAlgorithm.RSASign,
        PubKeyAlgorithm.DSA,
        PubKeyAlgorithm.ECDSA,
        PubKeyAlgorithm.EdDSA,
    }
    encrypts = algorithm in {
        PubKeyAlgorithm.RSAEncryptOrSign,
        PubKeyAlgorithm.RSAEncrypt,
        PubKeyAlgorithm.ElGamal,
        PubKeyAlgorithm.ECDH,
    }
    return _Capabilities(signs, primary and signs, encrypts, encrypts)


def _latest(signatures: Iterable[object]) -> object | None:
    return max(signatures, key=lambda sig: sig.created, default=None)  # type: ignore[attr-defined]


def _verified_by(primary: object, subject: object, sig: object) -> bool:
    """Whether ``sig`` over ``subject`` was really made by ``primary``: a self-signature
    decides capabilities, expiry, e-mails and revocation, so an unsigned claim (a user id
    or binding pasted onto someone else's key) must not count. The bare cryptographic
    check: pgpy's ``verify`` refuses a key expired *now*, yet an expired key's
    self-signatures are what say when it expired (its old commits stay verifiable)."""
    from services.signature_verifier.domain.openpgp import _crypto_ok

    return _crypto_ok(primary, sig, subject)  # type: ignore[arg-type]


def _user_id_certifications(primary: object, uid: object) -> list[object]:
    from pgpy.constants import SignatureType

    certifications = {
        SignatureType.Generic_Cert,
        SignatureType.Persona_Cert,
        SignatureType.Casual_Cert,
        SignatureType.Positive_Cert,
    }
    key_id = primary.fingerprint.keyid  # type: ignore[attr-defined]
    return [
        sig
        for sig in uid.__sig__  # type: ignore[attr-defined]
        if sig.signer == key_id and sig.type in certifications and _verified_by(primary, uid, sig)
    ]


def _self_signatures(key: object) -> Iterator[object]:
    """Primary: every user id's certifications by the key itself, and direct-key signatures;
    subkey: its binding signatures by the primary. Only those that verify."""
    from pgpy.constants import SignatureType

    if key.is_primary:  # type: ignore[attr-defined]
        for uid in key.userids:  # type: ignore[attr-defined]
            yield from _user_id_certifications(key, uid)
        kind, primary = SignatureType.DirectlyOnKey, key
    else:
        kind, primary = SignatureType.Subkey_Binding, key.parent  # type: ignore[attr-defined]
    signer = primary.fingerprint.keyid  # type: ignore[attr-defined]
    yield from (
        sig
        for sig in key.__sig__  # type: ignore[attr-defined]
        if sig.signer == signer and sig.type == kind and _verified_by(primary, key, sig)
    )


def _revoked(key: object) -> bool:
    from pgpy.constants import SignatureType

    if key.is_primary:  # type: ignore[attr-defined]
        kind, primary = SignatureType.KeyRevocation, key
    else:
        kind, primary = SignatureType.SubkeyRevocation, key.parent  # type: ignore[attr-defined]
    signer = primary.fingerprint.keyid  # type: ignore[attr-defined]
    return any(
        sig.signer == signer and sig.type == kind and _verified_by(primary, key, sig)
        for sig in key.__sig__  # type: ignore[attr-defined]
    )


class _KeyFacts(msgspec.Struct, frozen=True):
    key_id: str
    capabilities: _Capabilities
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked: bool


def _facts(key: object, *, primary: bool) -> _KeyFacts:
    latest = _latest(_self_signatures(key))
    flags = latest.key_flags if latest is not None else None  # type: ignore[attr-defined]
    created: dt.datetime = key.created  # type: ignore[attr-defined]
    if created.tzinfo is None:
        created = created.replace(tzinfo=dt.UTC)
    lifetime = latest.key_expiration if latest is not None else None  # type: ignore[attr-defined]
    return _KeyFacts(
        key_id=str(key.fingerprint.keyid).upper(),  # type: ignore[attr-defined]
        capabilities=_capabilities(flags, key.key_algorithm, primary=primary),  # type: ignore[attr-defined]
        created_at=created,
        expires_at=created + lifetime if lifetime else None,
        revoked=_revoked(key),
    )


def parse_gpg_key(
    armored: str,
    *,
    key_store_id: int | str,
    owner_emails: Sequence[KeyEmail],
    name: str | None = None,
) -> GpgKeyView:
    """An armoured OpenPGP public key as GitHub shows it, or ``KeyRefused``.

    ``emails`` are the key's user-id e-mails; each is ``verified`` when it is a verified
    e-mail of the owner's account (compared case-insensitively)."""
    if len(armored) > MAX_ARMORED_KEY_CHARS:
        raise KeyRefused(
            "key_too_large", f"the armoured key exceeds {MAX_ARMORED_KEY_CHARS} characters"
        )
    data = _dearmor(armored)
    key_packets = _screen(data)

    from pgpy import PGPKey

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            key, _others = PGPKey.from_blob(data)
    # pgpy raises anything from ValueError to struct.error on corrupt input.
    except Exception as exc:
        raise KeyRefused("malformed_key", "the key does not parse as OpenPGP") from exc
    if not key.is_public:
        raise KeyRefused("secret_key", "this is a private key: upload the public key")

    primary = _facts(key, primary=True)
    verified = {entry.email.casefold() for entry in owner_emails if entry.verified}
    seen: set[str] = set()
    emails: list[GpgKeyEmail] = []
    certified = [uid for uid in key.userids if _user_id_certifications(key, uid)]
    if not certified:
        raise KeyRefused("no_user_id", "no user id carries a valid self-signature")
    for uid in certified:
        address = uid.email
        if address and address.casefold() not in seen:
            seen.add(address.casefold())
            emails.append(GpgKeyEmail(email=address, verified=address.casefold() in verified))
    subkeys = []
    for subkey in key.subkeys.values():
        facts = _facts(subkey, primary=False)
        subkeys.append(
            GpgSubkeyView(
                id=None,
                primary_key_id=key_store_id,
                key_id=facts.key_id,
                public_key=_packet_base64(key_packets, facts.key_id),
                emails=(),
                subkeys=(),
                **msgspec.structs.asdict(facts.capabilities),
                created_at=_timestamp(facts.created_at),
                expires_at=_timestamp(facts.expires_at) if facts.expires_at else None,
                raw_key=None,
                revoked=facts.revoked or primary.revoked,
            )
        )
    return GpgKeyView(
        id=key_store_id,
        name=name,
        primary_key_id=None,
        key_id=primary.key_id,
        public_key=_packet_base64(key_packets, primary.key_id),
        emails=tuple(emails),
        subkeys=tuple(subkeys),
        **msgspec.structs.asdict(primary.capabilities),
        created_at=_timestamp(primary.created_at),
        expires_at=_timestamp(primary.expires_at) if primary.expires_at else None,
        raw_key=armored,
        revoked=primary.revoked,
    )


def _packet_base64(key_packets: dict[str, bytes], key_id: str) -> str:
    packet = key_packets.get(key_id)
    if packet is None:  # a non-v4 key pgpy accepted: its packet id differs from ours
        raise KeyRefused("unsupported_key_type", "only version 4 OpenPGP keys are supported")
    return base64.b64encode(packet).decode("ascii")


def refuse_duplicate(key_ids: Iterable[str], *, existing: Iterable[str]) -> None:
    """``duplicate_key`` when any of the new key's ids (primary, subkeys, or an SSH
    fingerprint) is already uploaded. GitHub refuses a key uploaded twice, by anyone."""
    taken = {_comparable(key_id) for key_id in existing}
    clash = sorted(key_id for key_id in key_ids if _comparable(key_id) in taken)
    if clash:
        raise KeyRefused("duplicate_key", f"key {clash[0]} is already uploaded")


def _comparable(key_id: str) -> str:
    # OpenPGP ids are hex (any case); SSH fingerprints are base64, where case matters.
    return key_id if key_id.startswith("SHA256:") else key_id.upper()


def gpg_key_ids(view: GpgKeyView) -> tuple[str, ...]:
    """Every key id the key answers for (primary first)."""
    return (view.key_id, *(subkey.key_id for subkey in view.subkeys))


# --- SSH signing keys ------------------------------------------------------------------

_SSH_KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)
# cryptography cannot load security-key (FIDO) public keys; their blob is checked by hand.
_SK_KEY_TYPES = frozenset({"sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com"})


def ssh_fingerprint(blob: bytes) -> str:
    """``SHA256:`` + unpadded base64 of the key blob's SHA-256, as ``ssh-keygen -lf`` prints."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")


def _ssh_strings(blob: bytes) -> list[bytes]:
    fields, offset = [], 0
    while offset < len(blob):
        if offset + 4 > len(blob):
            raise KeyRefused("malformed_key", "the SSH key blob is truncated")
        size = int.from_bytes(blob[offset : offset + 4], "big")
        offset += 4
        if offset + size > len(blob):
            raise KeyRefused("malformed_key", "the SSH key blob is truncated")
        fields.append(blob[offset : offset + size])
        offset += size
    return fields


def _check_ssh_blob(key_type: str, blob: bytes) -> None:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_ssh_public_key

    fields = _ssh_strings(blob)
    if not fields or fields[0].decode("ascii", "replace") != key_type:
        raise KeyRefused("malformed_key", "the key's type and its blob disagree")
    if key_type in _SK_KEY_TYPES:
        # sk-ssh-ed25519: type, 32-byte key, application; sk-ecdsa: type, curve, point, application.
        expected = 3 if key_type.startswith("sk-ssh-ed25519") else 4
        if len(fields) != expected or not fields[-1].startswith(b"ssh:"):
            raise KeyRefused("malformed_key", "the security-key blob is malformed")
        if expected == 3 and len(fields[1]) != 32:
            raise KeyRefused("malformed_key", "the security-key blob is malformed")
        return
    try:
        public = load_ssh_public_key(key_type.encode() + b" " + base64.b64encode(blob))
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyRefused("malformed_key", "the SSH public key does not parse") from exc
    if isinstance(public, rsa.RSAPublicKey) and public.key_size < MIN_SSH_RSA_BITS:
        raise KeyRefused(
            "weak_key", f"RSA keys need at least {MIN_SSH_RSA_BITS} bits (got {public.key_size})"
        )


def parse_ssh_key(
    text: str, *, title: str, key_store_id: int | str, created_at: dt.datetime
) -> SshSigningKeyView:
    """An SSH public key line (``type base64 [comment]``) as GitHub shows a signing key, or
    ``KeyRefused``. ``key`` is the line without its comment, as GitHub answers it."""
    if len(text) > MAX_SSH_KEY_CHARS:
        raise KeyRefused("key_too_large", f"the SSH key exceeds {MAX_SSH_KEY_CHARS} characters")
    stripped = text.strip()
    if "PRIVATE KEY" in stripped:
        raise KeyRefused("secret_key", "this is a private key: upload the public key")
    parts = stripped.split()
    if len(parts) < 2 or "\n" in stripped:
        raise KeyRefused("malformed_key", "expected one line: <type> <base64> [comment]")
    key_type, encoded = parts[0], parts[1]
    if key_type not in _SSH_KEY_TYPES:
        raise KeyRefused(
            "unsupported_key_type",
            f"{key_type[:64]!r} is not a supported signing key type "
            f"({', '.join(sorted(_SSH_KEY_TYPES))})",
        )
    try:
        blob = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyRefused("malformed_key", "the SSH key's base64 is corrupt") from exc
    _check_ssh_blob(key_type, blob)
    return SshSigningKeyView(
        id=key_store_id,
        key=f"{key_type} {base64.b64encode(blob).decode('ascii')}",
        title=title,
        created_at=_timestamp(created_at),
        fingerprint=ssh_fingerprint(blob),
    )


# --- As verification sees them ---------------------------------------------------------


def signing_key_of(
    view: GpgKeyView | SshSigningKeyView, *, owner_emails: Sequence[KeyEmail] = ()
) -> SigningKey:
    """The key as verification needs it. OpenPGP: the primary's id when it may sign, and
    every subkey that may sign (a signature names the subkey that made it); SSH: the
    fingerprint."""
    account_emails = tuple(owner_emails)
    if isinstance(view, SshSigningKeyView):
        return SigningKey(
            key_store_id=str(view.id),
            kind="ssh",
            key_ids=(view.fingerprint,),
            account_emails=account_emails,
        )
    signing = tuple(
        [view.key_id] * view.can_sign
        + [subkey.key_id for subkey in view.subkeys if subkey.can_sign]
    )
    return SigningKey(
        key_store_id=str(view.id),
        kind="openpgp",
        key_ids=signing,
        account_emails=account_emails,
        revoked=view.revoked,
    )
