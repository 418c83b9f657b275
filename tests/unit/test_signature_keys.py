"""Uploaded signing keys (issue 10): OpenPGP and SSH keys parsed into GitHub's shapes,
and every refusal with its stable code. Keys are GitHub's real web-flow key and keys built
here with pgpy and cryptography."""

from __future__ import annotations

import base64
import datetime as dt
import shutil
import subprocess
import warnings
from pathlib import Path

import pgpy
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from pgpy.constants import (
    EllipticCurveOID,
    HashAlgorithm,
    KeyFlags,
    PubKeyAlgorithm,
    SignatureType,
)

from services.signature_verifier.domain.keys import (
    MAX_ARMORED_KEY_CHARS,
    MAX_SIGNATURES,
    MAX_USER_IDS,
    GpgKeyView,
    KeyRefused,
    SshSigningKeyView,
    _packets,
    gpg_key_ids,
    parse_gpg_key,
    parse_ssh_key,
    refuse_duplicate,
    signing_key_of,
    ssh_fingerprint,
)
from services.signature_verifier.domain.model import KeyEmail
from tests.conftest import shared_data

WEB_FLOW = ("git", "github-web-flow-4AEE18F83AFDEB23.asc")
NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _quiet_pgpy() -> None:
    warnings.simplefilter("ignore")


def _refusal(call: object, *args: object, **kwargs: object) -> str:
    with pytest.raises(KeyRefused) as refused:
        call(*args, **kwargs)  # type: ignore[operator]
    return refused.value.code


def _armor(data: bytes, *, label: str = "PUBLIC KEY BLOCK") -> str:
    encoded = base64.b64encode(data).decode()
    lines = [encoded[i : i + 64] for i in range(0, len(encoded), 64)]
    return f"-----BEGIN PGP {label}-----\n\n" + "\n".join(lines) + f"\n-----END PGP {label}-----\n"


def _uid_packet(text: bytes) -> bytes:
    assert len(text) < 192
    return bytes([0xC0 | 13, len(text)]) + text


def _gpg(view_of: str, **owner: bool) -> GpgKeyView:
    emails = [KeyEmail(email=email, verified=verified) for email, verified in owner.items()]
    return parse_gpg_key(view_of, key_store_id=42, owner_emails=emails)


def _new_key(
    algorithm: PubKeyAlgorithm = PubKeyAlgorithm.EdDSA,
    *,
    email: str = "dev@example.com",
    usage: set[KeyFlags] | None = None,
    expires_in: dt.timedelta | None = None,
) -> pgpy.PGPKey:
    rsa_key = algorithm is PubKeyAlgorithm.RSAEncryptOrSign
    size: object = 2048 if rsa_key else EllipticCurveOID.Ed25519
    key = pgpy.PGPKey.new(algorithm, size)
    key.add_uid(
        pgpy.PGPUID.new("Dev", email=email),
        usage=usage if usage is not None else {KeyFlags.Certify, KeyFlags.Sign},
        hashes=[HashAlgorithm.SHA256],
        key_expiration=expires_in,
    )
    return key


def _add_subkey(
    primary: pgpy.PGPKey, usage: set[KeyFlags], *, expires_in: dt.timedelta | None = None
) -> pgpy.PGPKey:
    if KeyFlags.Sign in usage:
        subkey = pgpy.PGPKey.new(PubKeyAlgorithm.EdDSA, EllipticCurveOID.Ed25519)
    else:
        subkey = pgpy.PGPKey.new(PubKeyAlgorithm.ECDH, EllipticCurveOID.Curve25519)
    primary.add_subkey(subkey, usage=usage)
    bound = primary.subkeys[subkey.fingerprint.keyid]
    if expires_in is not None:
        # pgpy's bind() drops key_expiration for subkeys: add a later binding signature
        # carrying it, as `gpg --quick-set-expire` does.
        sig = pgpy.PGPSignature.new(
            SignatureType.Subkey_Binding,
            primary.key_algorithm,
            HashAlgorithm.SHA256,
            primary.fingerprint.keyid,
            created=subkey.created + dt.timedelta(seconds=5),
        )
        sig._signature.subpackets.addnew("KeyFlags", hashed=True, flags=usage)
        sig._signature.subpackets.addnew("KeyExpirationTime", hashed=True, expires=expires_in)
        bound |= primary._sign(bound, sig)
    return bound


def _whole_seconds(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- OpenPGP: the real key -------------------------------------------------------------


def test_github_web_flow_key_reads_as_github_shows_it() -> None:
    armored = shared_data(*WEB_FLOW).read_text()

    view = _gpg(armored, **{"noreply@github.com": True})

    assert view.id == 42
    assert view.key_id == "4AEE18F83AFDEB23"
    assert view.primary_key_id is None
    assert [(e.email, e.verified) for e in view.emails] == [("noreply@github.com", True)]
    assert view.subkeys == ()
    assert (view.can_sign, view.can_certify) == (True, True)
    assert (view.can_encrypt_comms, view.can_encrypt_storage) == (False, False)
    assert view.created_at == "2017-08-16T15:44:01Z"
    assert view.expires_at is None
    assert view.revoked is False
    assert view.raw_key == armored
    # GitHub's public_key is the bare key packet in base64 (new-format tag 6: "xsBN…").
    assert view.public_key.startswith("xsBN")
    assert base64.b64decode(view.public_key)[0] == 0xC6

    key = signing_key_of(view, owner_emails=[KeyEmail(email="noreply@github.com", verified=True)])
    assert key.kind == "openpgp"
    assert key.key_ids == ("4AEE18F83AFDEB23",)
    assert key.key_store_id == "42"
    assert key.account_emails == (KeyEmail(email="noreply@github.com", verified=True),)


def test_an_email_not_verified_on_the_account_reads_unverified() -> None:
    armored = shared_data(*WEB_FLOW).read_text()

    assert _gpg(armored).emails[0].verified is False
    assert _gpg(armored, **{"noreply@github.com": False}).emails[0].verified is False
    assert _gpg(armored, **{"NoReply@GitHub.com": True}).emails[0].verified is True


# --- OpenPGP: keys built here ----------------------------------------------------------


def test_rsa_primary_that_signs() -> None:
    key = _new_key(PubKeyAlgorithm.RSAEncryptOrSign, email="rsa@example.com")

    view = _gpg(str(key.pubkey), **{"rsa@example.com": True})

    assert view.key_id == key.fingerprint.keyid.upper()
    assert len(view.key_id) == 16
    assert view.can_sign and view.can_certify
    assert not view.can_encrypt_comms
    assert view.created_at == _whole_seconds(key.created)
    assert view.expires_at is None
    assert view.emails[0].verified is True
    assert signing_key_of(view).key_ids == (view.key_id,)


def test_eddsa_certify_only_primary_with_signing_and_encryption_subkeys() -> None:
    key = _new_key(usage={KeyFlags.Certify})
    signing = _add_subkey(key, {KeyFlags.Sign})
    encryption = _add_subkey(key, {KeyFlags.EncryptCommunications, KeyFlags.EncryptStorage})

    view = _gpg(str(key.pubkey))

    assert (view.can_sign, view.can_certify) == (False, True)
    by_id = {subkey.key_id: subkey for subkey in view.subkeys}
    assert set(by_id) == {signing.fingerprint.keyid.upper(), encryption.fingerprint.keyid.upper()}
    signs = by_id[signing.fingerprint.keyid.upper()]
    assert (signs.can_sign, signs.can_encrypt_comms, signs.can_certify) == (True, False, False)
    assert signs.primary_key_id == 42
    assert base64.b64decode(signs.public_key)[0] == 0xCE  # a public-subkey packet
    encrypts = by_id[encryption.fingerprint.keyid.upper()]
    assert (encrypts.can_sign, encrypts.can_encrypt_comms, encrypts.can_encrypt_storage) == (
        False,
        True,
        True,
    )
    # Verification matches the signing subkey only: the primary may not sign.
    assert signing_key_of(view).key_ids == (signing.fingerprint.keyid.upper(),)
    assert gpg_key_ids(view)[0] == view.key_id and len(gpg_key_ids(view)) == 3


def test_expiring_key_and_subkey_read_their_latest_self_signature() -> None:
    key = _new_key(expires_in=dt.timedelta(days=30))
    subkey = _add_subkey(key, {KeyFlags.Sign}, expires_in=dt.timedelta(days=10))

    view = _gpg(str(key.pubkey))

    created = key.created.replace(microsecond=0)
    assert view.expires_at == _whole_seconds(created + dt.timedelta(days=30))
    sub_created = subkey.created.replace(microsecond=0)
    assert view.subkeys[0].expires_at == _whole_seconds(sub_created + dt.timedelta(days=10))
    assert view.subkeys[0].can_sign is True


def test_revoked_key_and_revoked_subkey_are_marked() -> None:
    key = _new_key()
    subkey = _add_subkey(key, {KeyFlags.Sign})
    subkey |= key.revoke(subkey)

    view = _gpg(str(key.pubkey))
    assert view.revoked is False
    assert view.subkeys[0].revoked is True

    key |= key.revoke(key)
    revoked = _gpg(str(key.pubkey))
    assert revoked.revoked is True
    assert all(sub.revoked for sub in revoked.subkeys)
    assert signing_key_of(revoked).revoked is True


# --- OpenPGP: refusals -----------------------------------------------------------------


def test_secret_key_is_refused_as_such() -> None:
    key = _new_key()

    assert _refusal(_gpg, str(key)) == "secret_key"
    # A secret-key packet relabelled as a public block is caught by the packet walk.
    assert _refusal(_gpg, _armor(bytes(key))) == "secret_key"
    with pytest.raises(KeyRefused, match="upload the public key"):
        _gpg(str(key))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB",
        _armor(b"").replace("\n\n", "\n\n!!!not base64!!!"),
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n\n-----END PGP PUBLIC KEY BLOCK-----",
        "-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----",
        _armor(b"\x00garbage bytes, no packet header"),
    ],
)
def test_garbage_is_malformed(text: str) -> None:
    assert _refusal(_gpg, text) == "malformed_key"


def test_truncated_armor_is_malformed() -> None:
    armored = str(_new_key(PubKeyAlgorithm.RSAEncryptOrSign).pubkey)
    lines = armored.splitlines()

    assert _refusal(_gpg, "\n".join(lines[: len(lines) // 2])) == "malformed_key"
    # END line kept, body cut: the CRC (or, without it, the packet walk) catches it.
    cut = "\n".join(lines[:4] + lines[-2:])
    assert _refusal(_gpg, cut) == "malformed_key"
    without_crc = "\n".join(line for line in lines[:4] + lines[-1:] if not line.startswith("="))
    assert _refusal(_gpg, without_crc) == "malformed_key"


def test_two_keys_in_one_block_are_refused() -> None:
    both = bytes(_new_key().pubkey) + bytes(_new_key().pubkey)

    assert _refusal(_gpg, _armor(both)) == "multiple_keys"


def test_a_key_without_user_id_is_refused() -> None:
    key = pgpy.PGPKey.new(PubKeyAlgorithm.EdDSA, EllipticCurveOID.Ed25519)

    assert _refusal(_gpg, _armor(bytes(key.pubkey))) == "no_user_id"


def _pgpy_must_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("pgpy was handed a key the cheap checks should have refused")

    monkeypatch.setattr(pgpy.PGPKey, "from_blob", refuse)


def test_50_mb_armor_is_refused_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    _pgpy_must_not_run(monkeypatch)
    huge = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n" + "A" * (50 * 1024 * 1024)

    assert _refusal(_gpg, huge) == "key_too_large"
    assert _refusal(_gpg, "x" * (MAX_ARMORED_KEY_CHARS + 1)) == "key_too_large"


def test_10000_user_ids_are_refused_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    key_packet = bytes(_new_key().pubkey)  # key, one user id, its self-signature
    many = key_packet + b"".join(_uid_packet(f"u{i}@example.com".encode()) for i in range(10_000))
    armored = _armor(many)
    assert len(armored) < MAX_ARMORED_KEY_CHARS  # the user-id count refuses it, not the size
    _pgpy_must_not_run(monkeypatch)

    with pytest.raises(KeyRefused, match=f"more than {MAX_USER_IDS} user ids") as refused:
        _gpg(armored)
    assert refused.value.code == "key_too_large"


def test_the_user_id_bound_is_inclusive() -> None:
    key = _new_key()
    extra = b"".join(_uid_packet(f"u{i}@example.com".encode()) for i in range(MAX_USER_IDS - 1))

    view = _gpg(_armor(bytes(key.pubkey) + extra))  # exactly MAX_USER_IDS user ids: kept

    assert view.emails[0].email == "dev@example.com"


def test_a_user_id_without_a_valid_self_signature_does_not_count() -> None:
    key_packet, uid, certification = (p.raw for p in _packets(bytes(_new_key().pubkey)))
    # A user id pasted onto the key with a copy of another user id's self-signature: the
    # signer id matches, the cryptography does not.
    pasted = _uid_packet(b"Mallory <mallory@example.com>") + certification

    view = _gpg(_armor(key_packet + uid + certification + pasted))
    assert [e.email for e in view.emails] == ["dev@example.com"]

    only_pasted = key_packet + pasted
    assert _refusal(_gpg, _armor(only_pasted)) == "no_user_id"


def test_too_many_signatures_are_refused_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    key_packet, uid, certification = (p.raw for p in _packets(bytes(_new_key().pubkey)))
    armored = _armor(key_packet + uid + certification * (MAX_SIGNATURES + 1))
    assert len(armored) < MAX_ARMORED_KEY_CHARS
    _pgpy_must_not_run(monkeypatch)

    assert _refusal(_gpg, armored) == "key_too_large"


def test_duplicates_are_refused_by_any_shared_key_id() -> None:
    key = _new_key(usage={KeyFlags.Certify})
    subkey = _add_subkey(key, {KeyFlags.Sign})
    view = _gpg(str(key.pubkey))

    refuse_duplicate(gpg_key_ids(view), existing=["0123456789ABCDEF"])  # no clash
    assert _refusal(refuse_duplicate, gpg_key_ids(view), existing=[view.key_id.lower()]) == (
        "duplicate_key"
    )
    assert (
        _refusal(refuse_duplicate, gpg_key_ids(view), existing=[subkey.fingerprint.keyid])
        == "duplicate_key"
    )


# --- SSH signing keys ------------------------------------------------------------------


def _openssh(public: object, comment: str = "dev@laptop") -> str:
    line = public.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()
    return f"{line} {comment}"


def _ssh(text: str) -> SshSigningKeyView:
    return parse_ssh_key(text, title="laptop", key_store_id=9, created_at=NOW)


def _ssh_keygen_fingerprint(line: str, tmp_path: Path) -> str | None:
    if shutil.which("ssh-keygen") is None:
        return None
    path = tmp_path / "key.pub"
    path.write_text(line + "\n")
    out = subprocess.run(
        ["ssh-keygen", "-lf", str(path)], check=True, capture_output=True, text=True
    ).stdout
    return out.split()[1]


@pytest.mark.parametrize(
    ("kind", "private"),
    [
        ("ssh-ed25519", ed25519.Ed25519PrivateKey.generate()),
        ("ssh-rsa", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        ("ecdsa-sha2-nistp256", ec.generate_private_key(ec.SECP256R1())),
        ("ecdsa-sha2-nistp384", ec.generate_private_key(ec.SECP384R1())),
        ("ecdsa-sha2-nistp521", ec.generate_private_key(ec.SECP521R1())),
    ],
)
def test_ssh_signing_keys_read_as_github_shows_them(
    kind: str, private: object, tmp_path: Path
) -> None:
    line = _openssh(private.public_key())  # type: ignore[attr-defined]

    view = _ssh(line)

    assert view.id == 9
    assert view.title == "laptop"
    assert view.created_at == "2026-12-06T12:00:00Z"
    assert view.key == " ".join(line.split()[:2])  # the comment is not kept
    assert view.key.startswith(kind + " ")
    assert view.fingerprint.startswith("SHA256:") and not view.fingerprint.endswith("=")
    key = signing_key_of(view, owner_emails=[KeyEmail(email="dev@example.com", verified=True)])
    assert (key.kind, key.key_ids, key.key_store_id) == ("ssh", (view.fingerprint,), "9")
    assert key.account_emails[0].email == "dev@example.com"

    expected = _ssh_keygen_fingerprint(line, tmp_path)
    if expected is None:
        pytest.skip("ssh-keygen is not installed: fingerprint not cross-checked")
    assert view.fingerprint == expected


def test_security_key_ed25519_is_accepted(tmp_path: Path) -> None:
    def string(value: bytes) -> bytes:
        return len(value).to_bytes(4, "big") + value

    kind = b"sk-ssh-ed25519@openssh.com"
    blob = string(kind) + string(bytes(range(32))) + string(b"ssh:")
    line = f"{kind.decode()} {base64.b64encode(blob).decode()} yubikey"

    view = _ssh(line)

    assert view.fingerprint == ssh_fingerprint(blob)
    expected = _ssh_keygen_fingerprint(line, tmp_path)
    if expected is None:
        pytest.skip("ssh-keygen is not installed: fingerprint not cross-checked")
    assert view.fingerprint == expected


def test_ssh_refusals() -> None:
    ed = ed25519.Ed25519PrivateKey.generate()
    ed_line = _openssh(ed.public_key())
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    private_pem = ed.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()

    assert _refusal(_ssh, _openssh(weak.public_key())) == "weak_key"
    assert _refusal(_ssh, private_pem) == "secret_key"
    assert _refusal(_ssh, "ssh-dss AAAAB3NzaC1kc3MAAACBAP") == "unsupported_key_type"
    assert _refusal(_ssh, "hello world") == "unsupported_key_type"
    assert _refusal(_ssh, "garbage") == "malformed_key"
    assert _refusal(_ssh, "ssh-ed25519 !!!!") == "malformed_key"
    assert _refusal(_ssh, "ssh-ed25519 " + ed_line.split()[1][:-8]) == "malformed_key"
    # The declared type must be the blob's own.
    assert _refusal(_ssh, "ssh-rsa " + ed_line.split()[1]) == "malformed_key"
    assert _refusal(_ssh, ed_line + "\n" + ed_line) == "malformed_key"
    assert _refusal(_ssh, "ssh-ed25519 " + "A" * 20_000) == "key_too_large"


def test_ssh_duplicates_by_fingerprint() -> None:
    view = _ssh(_openssh(ed25519.Ed25519PrivateKey.generate().public_key()))

    assert _refusal(refuse_duplicate, [view.fingerprint], existing=[view.fingerprint]) == (
        "duplicate_key"
    )
    # Base64 is case-sensitive: a fingerprint differing only in case is another key.
    refuse_duplicate([view.fingerprint], existing=[view.fingerprint.swapcase()])


def test_a_key_expired_now_still_reads_its_user_ids_and_expiry() -> None:
    # Its old commits stay verifiable, so its upload must not be refused as "no user id".
    created = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    key = pgpy.PGPKey.new(PubKeyAlgorithm.EdDSA, EllipticCurveOID.Ed25519, created=created)
    key.add_uid(
        pgpy.PGPUID.new("Dev", email="dev@example.com"),
        usage={KeyFlags.Certify, KeyFlags.Sign},
        hashes=[HashAlgorithm.SHA256],
        key_expiration=dt.timedelta(days=30),
        created=created,
    )
    view = _gpg(str(key.pubkey))
    assert view.expires_at == "2020-01-31T00:00:00Z"
    assert [e.email for e in view.emails] == ["dev@example.com"]
