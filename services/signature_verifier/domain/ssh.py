"""SSH commit signatures (``-----BEGIN SSH SIGNATURE-----``, OpenSSH's SSHSIG format) checked
with ``cryptography`` against uploaded SSH signing keys.

The signed message is not the payload itself but
``"SSHSIG" || string(namespace) || string(reserved) || string(hash_alg) || string(H(payload))``;
git signs in the ``git`` namespace, and a signature made for any other namespace (a file
signature, say) must not pass as a commit signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Mapping, Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from services.signature_verifier.domain.model import Reason, SignedCommit, SigningKey, Verification

_ARMOUR_BEGIN = "-----BEGIN SSH SIGNATURE-----"
_ARMOUR_END = "-----END SSH SIGNATURE-----"
_MAGIC = b"SSHSIG"
_NAMESPACE = b"git"
_HASHES = {b"sha256": hashlib.sha256, b"sha512": hashlib.sha512}
_RSA_HASHES: dict[bytes, type[hashes.HashAlgorithm]] = {
    b"rsa-sha2-256": hashes.SHA256,
    b"rsa-sha2-512": hashes.SHA512,
}
_ECDSA_HASHES: dict[bytes, type[hashes.HashAlgorithm]] = {
    b"ecdsa-sha2-nistp256": hashes.SHA256,
    b"ecdsa-sha2-nistp384": hashes.SHA384,
    b"ecdsa-sha2-nistp521": hashes.SHA512,
}
PublicKey = ed25519.Ed25519PublicKey | rsa.RSAPublicKey | ec.EllipticCurvePublicKey


class MalformedSSHSignature(ValueError):
    """The block is not an SSHSIG signature."""


class SSHSignature:
    """The fields of a parsed SSHSIG blob."""

    __slots__ = ("hash_algorithm", "namespace", "public_key", "reserved", "signature")

    def __init__(self, blob: bytes) -> None:
        if not blob.startswith(_MAGIC):
            raise MalformedSSHSignature("the blob does not start with SSHSIG")
        reader = _Reader(blob[len(_MAGIC) :])
        version = reader.uint32()
        if version != 1:
            raise MalformedSSHSignature(f"SSHSIG version {version} is not 1")
        self.public_key = reader.string()
        self.namespace = reader.string()
        self.reserved = reader.string()
        self.hash_algorithm = reader.string()
        self.signature = reader.string()
        reader.end()


class SSHKey:
    """An uploaded SSH signing key parsed once for verification."""

    __slots__ = ("blob", "fingerprint", "key", "public")

    def __init__(self, key: SigningKey, public_key_line: str) -> None:
        fields = public_key_line.strip().split()
        if len(fields) < 2:
            raise ValueError("an SSH public key is `type base64 [comment]`")
        try:
            self.blob = base64.b64decode(fields[1], validate=True)
        except binascii.Error as exc:
            raise ValueError("the SSH public key's base64 does not decode") from exc
        public = serialization.load_ssh_public_key(f"{fields[0]} {fields[1]}".encode())
        if not isinstance(
            public, ed25519.Ed25519PublicKey | rsa.RSAPublicKey | ec.EllipticCurvePublicKey
        ):
            raise ValueError("only Ed25519, RSA and ECDSA keys sign commits here")
        self.key = key
        self.public: PublicKey = public
        self.fingerprint = fingerprint(self.blob)


def fingerprint(public_key_blob: bytes) -> str:
    """OpenSSH's ``SHA256:`` fingerprint of a public key's wire form."""
    digest = base64.b64encode(hashlib.sha256(public_key_blob).digest()).rstrip(b"=")
    return "SHA256:" + digest.decode()


def parse_armoured(armoured: str) -> SSHSignature:
    """The SSHSIG fields of an armoured block; raises :class:`MalformedSSHSignature`."""
    lines = [line.strip() for line in armoured.strip().splitlines()]
    if len(lines) < 3 or lines[0] != _ARMOUR_BEGIN or lines[-1] != _ARMOUR_END:
        raise MalformedSSHSignature("the block is not armoured as an SSH signature")
    try:
        blob = base64.b64decode("".join(lines[1:-1]), validate=True)
    except binascii.Error as exc:
        raise MalformedSSHSignature("the signature's base64 does not decode") from exc
    return SSHSignature(blob)


def verify_ssh(
    signed: SignedCommit, keys_by_fingerprint: Mapping[str, Sequence[SSHKey]]
) -> Verification:
    """GitHub's verdict on an SSH-signed commit, given the uploaded keys by fingerprint."""
    if signed.signature is None:
        return Verification(reason="unsigned")
    try:
        parsed = parse_armoured(signed.signature)
    except MalformedSSHSignature:
        return Verification(reason="malformed_signature")
    signer = fingerprint(parsed.public_key)
    candidates = [key for key in keys_by_fingerprint.get(signer, ()) if not key.key.revoked]
    if not candidates:
        return Verification(reason="unknown_key", signer_key_id=signer)
    key = candidates[0]
    if not signature_checks_out(parsed, key.public, signed.payload):
        return Verification(
            reason="invalid", signer_key_id=signer, matched_key=key.key.key_store_id
        )
    email = signed.committer_email.lower()
    # SSH keys carry no e-mail: the owner's account decides, for every candidate.
    reason: Reason = "bad_email"
    for key in candidates:
        for account_email in key.key.account_emails:
            if account_email.email.lower() == email:
                if account_email.verified:
                    return Verification(
                        reason="valid", signer_key_id=signer, matched_key=key.key.key_store_id
                    )
                reason = "unverified_email"
    return Verification(
        reason=reason, signer_key_id=signer, matched_key=candidates[0].key.key_store_id
    )


def signed_message(
    namespace: bytes, reserved: bytes, hash_algorithm: bytes, payload: bytes
) -> bytes:
    """The bytes an SSHSIG signature covers for ``payload``."""
    digest = _HASHES[hash_algorithm](payload).digest()
    return _MAGIC + b"".join(
        _string(part) for part in (namespace, reserved, hash_algorithm, digest)
    )


def signature_checks_out(parsed: SSHSignature, public: PublicKey, payload: bytes) -> bool:
    """The cryptographic check, the namespace included (only `git` signs commits). The caller
    found ``public`` by the fingerprint of the key the signature embeds."""
    if parsed.namespace != _NAMESPACE or parsed.hash_algorithm not in _HASHES:
        return False
    message = signed_message(parsed.namespace, parsed.reserved, parsed.hash_algorithm, payload)
    try:
        reader = _Reader(parsed.signature)
        algorithm, raw = reader.string(), reader.string()
        reader.end()
        if isinstance(public, ed25519.Ed25519PublicKey) and algorithm == b"ssh-ed25519":
            public.verify(raw, message)
        elif isinstance(public, rsa.RSAPublicKey) and algorithm in _RSA_HASHES:
            public.verify(raw, message, padding.PKCS1v15(), _RSA_HASHES[algorithm]())
        elif isinstance(public, ec.EllipticCurvePublicKey) and algorithm in _ECDSA_HASHES:
            inner = _Reader(raw)
            r, s = inner.mpint(), inner.mpint()
            inner.end()
            public.verify(encode_dss_signature(r, s), message, ec.ECDSA(_ECDSA_HASHES[algorithm]()))
        else:  # ssh-rsa (SHA-1) and mismatched algorithms are refused, as OpenSSH does
            return False
    except (InvalidSignature, MalformedSSHSignature, ValueError):
        return False
    return True


def _string(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


class _Reader:
    """SSH wire-format fields (RFC 4251) read in order, with bounds checked."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def uint32(self) -> int:
        if self._at + 4 > len(self._data):
            raise MalformedSSHSignature("the blob ends inside a length")
        (value,) = struct.unpack_from(">I", self._data, self._at)
        self._at += 4
        return int(value)

    def string(self) -> bytes:
        length = self.uint32()
        if self._at + length > len(self._data):
            raise MalformedSSHSignature("a field runs past the blob's end")
        value = self._data[self._at : self._at + length]
        self._at += length
        return value

    def mpint(self) -> int:
        return int.from_bytes(self.string(), "big", signed=True)

    def end(self) -> None:
        if self._at != len(self._data):
            raise MalformedSSHSignature("trailing bytes after the last field")
