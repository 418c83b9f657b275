"""A commit's verification: split the object, then check its signature by kind against the
uploaded keys held in a :class:`KeyRing` (keys parsed once, looked up by the id a signature
names)."""

from __future__ import annotations

from collections import defaultdict

from services.signature_verifier.domain.commits import split_commit
from services.signature_verifier.domain.model import (
    MAX_SIGNATURE_CHARS,
    SignedCommit,
    SigningKey,
    Verification,
)
from services.signature_verifier.domain.openpgp import OpenPGPKey, verify_openpgp
from services.signature_verifier.domain.ssh import SSHKey, verify_ssh


class KeyRing:
    """The uploaded signing keys, parsed once, by OpenPGP key id (primary and bound subkeys)
    and by SSH fingerprint. Revoked keys are not held: they answer for nothing."""

    def __init__(self) -> None:
        self._openpgp: defaultdict[str, list[OpenPGPKey]] = defaultdict(list)
        self._ssh: defaultdict[str, list[SSHKey]] = defaultdict(list)

    def add_openpgp(self, key: SigningKey, armored: str | bytes) -> OpenPGPKey:
        parsed = OpenPGPKey.parse(key, armored)
        if not key.revoked:
            for key_id in parsed.facts:
                self._openpgp[key_id].append(parsed)
        return parsed

    def add_ssh(self, key: SigningKey, public_key_line: str) -> SSHKey:
        parsed = SSHKey(key, public_key_line)
        if not key.revoked:
            self._ssh[parsed.fingerprint].append(parsed)
        return parsed

    def remove(self, key_store_id: str) -> None:
        """Forget an uploaded key (deleted or revoked)."""
        for table in (self._openpgp, self._ssh):
            for key_id in list(table):
                kept = [k for k in table[key_id] if k.key.key_store_id != key_store_id]
                if kept:
                    table[key_id] = kept  # type: ignore[assignment]
                else:
                    del table[key_id]

    def verify(self, signed: SignedCommit) -> Verification:
        if signed.signature is None:
            return Verification(reason="unsigned")
        if len(signed.signature) > MAX_SIGNATURE_CHARS:  # never handed to pgpy or the SSH parser
            return Verification(reason="malformed_signature")
        if signed.kind == "openpgp":
            return verify_openpgp(signed, self._openpgp)
        if signed.kind == "ssh":
            return verify_ssh(signed, self._ssh)
        return Verification(reason="unknown_signature_type")


def verify_commit(raw_commit: bytes, keyring: KeyRing) -> Verification:
    """GitHub's verification of the commit object ``raw_commit``; raises
    :class:`~services.signature_verifier.domain.commits.MalformedCommit` when it is not one."""
    return keyring.verify(split_commit(raw_commit))
