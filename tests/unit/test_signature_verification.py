"""Commit signature verification (issue 10's domain): splitting commit objects, OpenPGP with
pgpy, SSH signatures, and agreement with GnuPG over openvex/spec's real history."""

from __future__ import annotations

import base64
import datetime as dt
import shutil
import struct
import subprocess
import warnings
from pathlib import Path

import pgpy
import pygit2
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from pgpy.constants import EllipticCurveOID, HashAlgorithm, KeyFlags, PubKeyAlgorithm

from services.signature_verifier.domain.commits import MalformedCommit, split_commit
from services.signature_verifier.domain.model import KeyEmail, SigningKey
from services.signature_verifier.domain.ssh import signed_message
from services.signature_verifier.domain.verify import KeyRing, verify_commit
from tests.conftest import shared_data

UTC = dt.UTC
COMMITTER = "ci@example.com"
BODY = (
    b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n"
    b"parent 1111111111111111111111111111111111111111\n"
    b"author Ann Author <ann@example.com> 1700000000 +0100\n"
    b"committer Cy Committer <" + COMMITTER.encode() + b"> 1700000300 -0530\n"
)
MESSAGE = b"\nSign me\n\nA body line.\n"
PAYLOAD = BODY + MESSAGE


def commit_with(signature: str, *, header: bytes = b"gpgsig", payload_head: bytes = BODY) -> bytes:
    """A commit object carrying ``signature`` the way git stores it (continuation lines)."""
    lines = signature.rstrip("\n").split("\n")
    folded = (header + b" " + "\n ".join(lines).encode() + b"\n") if lines else b""
    return payload_head + folded + MESSAGE


def account(*emails: tuple[str, bool]) -> tuple[KeyEmail, ...]:
    return tuple(KeyEmail(email=e, verified=v) for e, v in emails)


# --- commit objects -------------------------------------------------------------------------


def test_split_keeps_every_byte_but_the_signature_header() -> None:
    signed = split_commit(
        commit_with("-----BEGIN PGP SIGNATURE-----\n\nabc\n-----END PGP SIGNATURE-----\n")
    )
    assert signed.payload == PAYLOAD
    assert signed.signature == "-----BEGIN PGP SIGNATURE-----\n\nabc\n-----END PGP SIGNATURE-----\n"
    assert signed.kind == "openpgp"
    assert signed.committer_email == COMMITTER
    assert signed.committed_at == dt.datetime(2023, 11, 14, 22, 18, 20, tzinfo=UTC)
    assert signed.committed_at.utcoffset() == -dt.timedelta(hours=5, minutes=30)


def test_split_unsigned_and_kinds() -> None:
    unsigned = split_commit(PAYLOAD)
    assert unsigned.signature is None and unsigned.kind is None and unsigned.payload == PAYLOAD
    assert split_commit(commit_with("-----BEGIN SSH SIGNATURE-----\nx\n")).kind == "ssh"
    assert split_commit(commit_with("-----BEGIN SIGNED MESSAGE-----\nx\n")).kind == "x509"
    assert split_commit(commit_with("hello")).kind == "unknown"
    sha256 = split_commit(commit_with("-----BEGIN PGP SIGNATURE-----\n", header=b"gpgsig-sha256"))
    assert sha256.kind == "openpgp" and sha256.payload == PAYLOAD


def test_split_keeps_other_multiline_headers() -> None:
    mergetag = b"mergetag object 22\n type commit\n tag v1\n"
    raw = commit_with("-----BEGIN PGP SIGNATURE-----\n", payload_head=BODY + mergetag)
    assert split_commit(raw).payload == BODY + mergetag + MESSAGE


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"parent 11\ncommitter A <a@b> 1 +0000\n\nm",
        b"tree 4b\nauthor A <a@b> 1 +0000\n\nm",
        b"tree 4b\ncommitter A a@b 1 +0000\n\nm",
        b"tree 4b\ncommitter A <a@b> 1 +0070\n\nm",
        b"tree 4b\ncommitter A <a@b> 1 +0000\ncommitter A <a@b> 1 +0000\n\nm",
        b"tree 4b\ngpgsig a\ngpgsig b\ncommitter A <a@b> 1 +0000\n\nm",
        b"tree 4b\ncommitter A <a@b> 1 +0000",
    ],
)
def test_malformed_commit_objects_are_refused(raw: bytes) -> None:
    with pytest.raises(MalformedCommit):
        split_commit(raw)


# --- OpenPGP --------------------------------------------------------------------------------


def new_key(
    email: str = COMMITTER,
    *,
    usage: set[KeyFlags] | None = None,
    created: dt.datetime | None = None,
    expires: dt.timedelta | None = None,
    signing_subkey: bool = False,
) -> pgpy.PGPKey:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        key = pgpy.PGPKey.new(PubKeyAlgorithm.EdDSA, EllipticCurveOID.Ed25519, created=created)
        uid = pgpy.PGPUID.new("Cy Committer", email=email)
        primary_usage = usage if usage is not None else {KeyFlags.Sign, KeyFlags.Certify}
        if signing_subkey:
            primary_usage = {KeyFlags.Certify}
        key.add_uid(
            uid,
            usage=primary_usage,
            hashes=[HashAlgorithm.SHA256],
            key_expiration=expires,
            created=created,
        )
        if signing_subkey:
            sub = pgpy.PGPKey.new(PubKeyAlgorithm.EdDSA, EllipticCurveOID.Ed25519, created=created)
            key.add_subkey(sub, usage={KeyFlags.Sign}, created=created)
    return key


def pgp_sign(key: pgpy.PGPKey, payload: bytes = PAYLOAD, *, at: dt.datetime | None = None) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        key._require_usage_flags = False  # let a key without the sign flag sign anyway
        return str(key.sign(payload, created=at or dt.datetime.now(UTC)))


def ring_with(key: pgpy.PGPKey, *emails: tuple[str, bool], store_id: str = "k1") -> KeyRing:
    ring = KeyRing()
    signing = SigningKey(
        key_store_id=store_id,
        kind="openpgp",
        key_ids=(key.fingerprint.keyid,),
        account_emails=account(*(emails or ((COMMITTER, True),))),
    )
    ring.add_openpgp(signing, str(key.pubkey))
    return ring


@pytest.fixture(scope="module")
def signer() -> pgpy.PGPKey:
    return new_key()


def test_openpgp_valid(signer: pgpy.PGPKey) -> None:
    outcome = verify_commit(commit_with(pgp_sign(signer)), ring_with(signer))
    assert outcome.reason == "valid" and outcome.verified
    assert outcome.signer_key_id == signer.fingerprint.keyid.upper()
    assert outcome.matched_key == "k1"


def test_openpgp_signing_subkey_is_valid() -> None:
    key = new_key(signing_subkey=True)
    signature = pgp_sign(key)
    outcome = verify_commit(commit_with(signature), ring_with(key))
    assert outcome.reason == "valid"
    assert outcome.signer_key_id in {k.upper() for k in key.subkeys}


def test_openpgp_tampered_payload_is_invalid(signer: pgpy.PGPKey) -> None:
    raw = commit_with(pgp_sign(signer)).replace(b"Sign me", b"Sign m3")
    assert verify_commit(raw, ring_with(signer)).reason == "invalid"


def test_openpgp_garbage_block_is_malformed(signer: pgpy.PGPKey) -> None:
    garbage = "-----BEGIN PGP SIGNATURE-----\n\nbm90IGEgc2lnbmF0dXJl\n-----END PGP SIGNATURE-----\n"
    assert verify_commit(commit_with(garbage), ring_with(signer)).reason == "malformed_signature"
    truncated = pgp_sign(signer)[:120] + "\n-----END PGP SIGNATURE-----\n"
    assert verify_commit(commit_with(truncated), ring_with(signer)).reason == "malformed_signature"


def test_openpgp_unknown_key(signer: pgpy.PGPKey) -> None:
    other = new_key()
    outcome = verify_commit(commit_with(pgp_sign(signer)), ring_with(other))
    assert outcome.reason == "unknown_key"
    assert outcome.signer_key_id == signer.fingerprint.keyid.upper()
    assert verify_commit(commit_with(pgp_sign(signer)), KeyRing()).reason == "unknown_key"


def test_openpgp_key_without_sign_flag() -> None:
    key = new_key(usage={KeyFlags.Certify})
    assert verify_commit(commit_with(pgp_sign(key)), ring_with(key)).reason == "not_signing_key"


def test_openpgp_expiry_is_judged_at_signing_time() -> None:
    created = dt.datetime(2020, 1, 1, tzinfo=UTC)
    key = new_key(created=created, expires=dt.timedelta(days=365))
    ring = ring_with(key)
    before = pgp_sign(key, at=dt.datetime(2020, 6, 1, tzinfo=UTC))
    after = pgp_sign(key, at=dt.datetime(2021, 6, 1, tzinfo=UTC))
    # The key has long expired now, yet what it signed while alive stays valid.
    assert verify_commit(commit_with(before), ring).reason == "valid"
    assert verify_commit(commit_with(after), ring).reason == "expired_key"


def test_openpgp_committer_email_not_on_key() -> None:
    key = new_key("someone-else@example.com")
    ring = ring_with(key, (COMMITTER, True), ("someone-else@example.com", True))
    assert verify_commit(commit_with(pgp_sign(key)), ring).reason == "bad_email"


def test_openpgp_email_on_key_but_unverified_on_account(signer: pgpy.PGPKey) -> None:
    ring = ring_with(signer, (COMMITTER, False))
    assert verify_commit(commit_with(pgp_sign(signer)), ring).reason == "unverified_email"
    absent = ring_with(signer, ("other@example.com", True))
    assert verify_commit(commit_with(pgp_sign(signer)), absent).reason == "unverified_email"


def test_openpgp_revoked_or_removed_key_answers_for_nothing(signer: pgpy.PGPKey) -> None:
    raw = commit_with(pgp_sign(signer))
    ring = KeyRing()
    ring.add_openpgp(
        SigningKey(key_store_id="r", kind="openpgp", key_ids=(), revoked=True), str(signer.pubkey)
    )
    assert verify_commit(raw, ring).reason == "unknown_key"
    ring = ring_with(signer)
    ring.remove("k1")
    assert verify_commit(raw, ring).reason == "unknown_key"


def test_other_signature_types_and_unsigned(signer: pgpy.PGPKey) -> None:
    ring = ring_with(signer)
    assert verify_commit(PAYLOAD, ring).reason == "unsigned"
    x509 = commit_with("-----BEGIN SIGNED MESSAGE-----\nMIIE\n-----END SIGNED MESSAGE-----\n")
    assert verify_commit(x509, ring).reason == "unknown_signature_type"
    assert verify_commit(commit_with("not armour"), ring).reason == "unknown_signature_type"


# --- SSH ------------------------------------------------------------------------------------


def ssh_string(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


def sshsig(
    private: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    payload: bytes = PAYLOAD,
    *,
    namespace: bytes = b"git",
    hash_algorithm: bytes = b"sha512",
) -> str:
    """An armoured SSHSIG made with ``cryptography`` alone (what `ssh-keygen -Y sign` writes)."""
    public_line = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    public_blob = base64.b64decode(public_line.split()[1])
    message = signed_message(namespace, b"", hash_algorithm, payload)
    if isinstance(private, ed25519.Ed25519PrivateKey):
        inner = ssh_string(b"ssh-ed25519") + ssh_string(private.sign(message))
    elif isinstance(private, rsa.RSAPrivateKey):
        raw = private.sign(message, padding.PKCS1v15(), hashes.SHA512())
        inner = ssh_string(b"rsa-sha2-512") + ssh_string(raw)
    else:
        r, s = decode_dss_signature(private.sign(message, ec.ECDSA(hashes.SHA256())))
        mpints = b"".join(ssh_string(n.to_bytes((n.bit_length() + 8) // 8, "big")) for n in (r, s))
        inner = ssh_string(b"ecdsa-sha2-nistp256") + ssh_string(mpints)
    blob = (
        b"SSHSIG"
        + struct.pack(">I", 1)
        + ssh_string(public_blob)
        + ssh_string(namespace)
        + ssh_string(b"")
        + ssh_string(hash_algorithm)
        + ssh_string(inner)
    )
    text = base64.b64encode(blob).decode()
    body = "\n".join(text[i : i + 70] for i in range(0, len(text), 70))
    return f"-----BEGIN SSH SIGNATURE-----\n{body}\n-----END SSH SIGNATURE-----\n"


def ssh_ring(public_line: str, *emails: tuple[str, bool]) -> KeyRing:
    ring = KeyRing()
    ring.add_ssh(
        SigningKey(
            key_store_id="s1",
            kind="ssh",
            key_ids=(),
            account_emails=account(*(emails or ((COMMITTER, True),))),
        ),
        public_line,
    )
    return ring


def public_line_of(
    private: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
) -> str:
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )


@pytest.mark.parametrize("kind", ["ed25519", "rsa", "ecdsa"])
def test_ssh_valid_built_with_cryptography(kind: str) -> None:
    private = {
        "ed25519": lambda: ed25519.Ed25519PrivateKey.generate(),
        "rsa": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ecdsa": lambda: ec.generate_private_key(ec.SECP256R1()),
    }[kind]()
    ring = ssh_ring(public_line_of(private) + " laptop")
    outcome = verify_commit(commit_with(sshsig(private)), ring)
    assert outcome.reason == "valid" and outcome.matched_key == "s1"
    assert outcome.signer_key_id is not None and outcome.signer_key_id.startswith("SHA256:")


def test_ssh_wrong_namespace_tampered_unknown_and_emails() -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    ring = ssh_ring(public_line_of(private))
    file_signature = sshsig(private, namespace=b"file")
    assert verify_commit(commit_with(file_signature), ring).reason == "invalid"
    tampered = commit_with(sshsig(private)).replace(b"Sign me", b"Sign m3")
    assert verify_commit(tampered, ring).reason == "invalid"
    stranger = ed25519.Ed25519PrivateKey.generate()
    assert verify_commit(commit_with(sshsig(stranger)), ring).reason == "unknown_key"
    raw = commit_with(sshsig(private))
    unverified = ssh_ring(public_line_of(private), (COMMITTER, False))
    assert verify_commit(raw, unverified).reason == "unverified_email"
    elsewhere = ssh_ring(public_line_of(private), ("other@example.com", True))
    assert verify_commit(raw, elsewhere).reason == "bad_email"


@pytest.mark.parametrize(
    "block",
    [
        "-----BEGIN SSH SIGNATURE-----\n!!!\n-----END SSH SIGNATURE-----\n",
        "-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n",
        "-----BEGIN SSH SIGNATURE-----\nbm9wZQ==\n-----END SSH SIGNATURE-----\n",
        "-----BEGIN SSH SIGNATURE-----\n",
    ],
)
def test_ssh_garbage_is_malformed(block: str) -> None:
    ring = ssh_ring(public_line_of(ed25519.Ed25519PrivateKey.generate()))
    assert verify_commit(commit_with(block), ring).reason == "malformed_signature"


def ssh_keygen_sign(tmp_path: Path, key_type: str, namespace: str = "git") -> tuple[str, str]:
    key = tmp_path / f"id_{key_type}"
    extra = ["-b", "3072"] if key_type == "rsa" else []
    subprocess.run(
        ["ssh-keygen", "-q", "-t", key_type, *extra, "-N", "", "-C", "t", "-f", str(key)],
        check=True,
    )
    message = tmp_path / "payload"
    message.write_bytes(PAYLOAD)
    subprocess.run(
        ["ssh-keygen", "-q", "-Y", "sign", "-n", namespace, "-f", str(key), str(message)],
        check=True,
        capture_output=True,
    )
    return (tmp_path / "payload.sig").read_text(), (tmp_path / f"id_{key_type}.pub").read_text()


@pytest.mark.skipif(
    shutil.which("ssh-keygen") is None, reason="ssh-keygen (openssh-client) is not installed"
)
@pytest.mark.parametrize("key_type", ["ed25519", "rsa", "ecdsa"])
def test_ssh_keygen_signatures(tmp_path: Path, key_type: str) -> None:
    signature, public = ssh_keygen_sign(tmp_path, key_type)
    ring = ssh_ring(public)
    assert verify_commit(commit_with(signature), ring).reason == "valid"
    tampered = commit_with(signature).replace(b"Sign me", b"Sign m3")
    assert verify_commit(tampered, ring).reason == "invalid"
    stranger = ssh_ring(public_line_of(ed25519.Ed25519PrivateKey.generate()))
    assert verify_commit(commit_with(signature), stranger).reason == "unknown_key"


@pytest.mark.skipif(
    shutil.which("ssh-keygen") is None, reason="ssh-keygen (openssh-client) is not installed"
)
def test_ssh_keygen_file_namespace_is_invalid(tmp_path: Path) -> None:
    signature, public = ssh_keygen_sign(tmp_path, "ed25519", namespace="file")
    assert verify_commit(commit_with(signature), ssh_ring(public)).reason == "invalid"


# --- real history: openvex/spec against GnuPG's verdicts ------------------------------------


@pytest.fixture(scope="module")
def openvex(tmp_path_factory: pytest.TempPathFactory) -> pygit2.Repository:
    bundle = shared_data("git", "openvex-spec.bundle")
    target = tmp_path_factory.mktemp("openvex") / "spec.git"
    subprocess.run(["git", "clone", "--quiet", "--bare", str(bundle), str(target)], check=True)
    return pygit2.Repository(str(target))


def test_openvex_history_agrees_with_gnupg(openvex: pygit2.Repository) -> None:
    verdicts = shared_data("git", "openvex-spec.gpg-verdicts.txt").read_text().splitlines()
    web_flow = shared_data("git", "github-web-flow-4AEE18F83AFDEB23.asc").read_text()
    ring = KeyRing()
    ring.add_openpgp(
        SigningKey(
            key_store_id="web-flow",
            kind="openpgp",
            key_ids=("4AEE18F83AFDEB23",),
            account_emails=account(("noreply@github.com", True)),
        ),
        web_flow,
    )
    assert len(verdicts) == 72
    seen: dict[tuple[str, str], int] = {}
    for line in verdicts:
        sha, gpg, *key_id = line.split()
        raw = openvex.odb.read(sha)[1]
        signed = split_commit(raw)
        # The payload and signature are what libgit2 extracts too (it drops one final newline).
        stored = openvex[sha].gpg_signature
        if stored[0] is None:
            assert signed.signature is None
        else:
            assert (stored[0].decode() + "\n", stored[1]) == (signed.signature, signed.payload)
        outcome = verify_commit(raw, ring)
        if gpg in "GU":
            assert outcome.reason == "valid", sha
            assert outcome.signer_key_id == key_id[0]
        elif gpg == "E":
            assert outcome.reason == "unknown_key", sha
            assert outcome.signer_key_id == key_id[0]
        else:
            # GnuPG answers N for every block it cannot read: unsigned commits, but also
            # gitsign (x509) and SSH signatures, which GitHub answers differently.
            expected = {None: "unsigned", "x509": "unknown_signature_type", "ssh": "unknown_key"}
            assert outcome.reason == expected[signed.kind], sha
        seen[(gpg, outcome.reason)] = seen.get((gpg, outcome.reason), 0) + 1
    assert seen == {
        ("U", "valid"): 20,
        ("E", "unknown_key"): 15,
        ("N", "unsigned"): 12,
        ("N", "unknown_signature_type"): 21,
        ("N", "unknown_key"): 4,
    }
