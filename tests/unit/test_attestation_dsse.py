"""Attestation envelopes, verified the way an outside verifier would: the DSSE PAE is
rebuilt here from the spec (not imported from the signing code) and the signature checked
with cryptography's Ed25519 public key."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from pathlib import Path

import msgspec
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from contracts.events.releases import Blocker
from contracts.rpc.release_decision import DecisionView
from services.release_decision.trust import keys
from services.release_decision.trust.dsse import attest
from shared.settings import SettingsError

SHA = "0123456789abcdef0123456789abcdef01234567"


def spec_pae(payload_type: str, body: bytes) -> bytes:
    """DSSE v1: "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, LEN in ASCII decimal."""
    t = payload_type.encode()
    return (
        b"DSSEv1 " + str(len(t)).encode() + b" " + t + b" " + str(len(body)).encode() + b" " + body
    )


def verify(envelope: dict, public_pem: str) -> dict:
    public = serialization.load_pem_public_key(public_pem.encode())
    assert isinstance(public, Ed25519PublicKey)
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    body = base64.b64decode(envelope["payload"], validate=True)
    [signature] = envelope["signatures"]
    assert signature["keyid"] == hashlib.sha256(raw).hexdigest()
    public.verify(
        base64.b64decode(signature["sig"], validate=True), spec_pae(envelope["payloadType"], body)
    )
    return json.loads(body)


def view(decision: str = "NO_SHIP") -> DecisionView:
    return DecisionView(
        repo="acme/web",
        commit=SHA.upper(),
        decision=decision,  # type: ignore[arg-type]
        blockers=[Blocker(code="vulnerability", message="CVE-1 in lodash (HIGH)", ref="f1")]
        if decision == "NO_SHIP"
        else [],
        evaluated_at=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        policy_version=3,
        revision=7,
    )


def signed(v: DecisionView, key: Ed25519PrivateKey) -> tuple[dict, str]:
    raw = keys.raw_public(key.public_key())
    envelope = json.loads(msgspec.json.encode(attest(v, key=key, keyid=keys.keyid_of(raw))))
    pem = keys.public_view(raw, active=True, source="generated", created_at=None).pem
    return envelope, pem


def test_envelope_verifies_independently_and_carries_the_statement() -> None:
    key = Ed25519PrivateKey.generate()
    envelope, pem = signed(view(), key)
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    statement = verify(envelope, pem)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["subject"] == [{"name": "git+acme/web", "digest": {"gitCommit": SHA}}]
    assert statement["predicateType"] == "https://gatehouse.dev/attestation/release-decision/v1"
    predicate = statement["predicate"]
    assert predicate["decision"] == "NO_SHIP" and predicate["revision"] == 7
    assert predicate["blockers"][0]["ref"] == "f1"


def test_a_changed_payload_or_type_or_another_key_fails_verification() -> None:
    key = Ed25519PrivateKey.generate()
    envelope, pem = signed(view(), key)
    forged = json.loads(base64.b64decode(envelope["payload"]))
    forged["predicate"]["decision"] = "SHIP"
    tampered = {**envelope, "payload": base64.b64encode(json.dumps(forged).encode()).decode()}
    with pytest.raises(InvalidSignature):
        verify(tampered, pem)
    with pytest.raises(InvalidSignature):
        verify({**envelope, "payloadType": "application/json"}, pem)
    _, other_pem = signed(view(), Ed25519PrivateKey.generate())
    with pytest.raises((InvalidSignature, AssertionError)):
        verify(envelope, other_pem)


def test_equal_decisions_sign_to_equal_envelopes() -> None:
    key = Ed25519PrivateKey.generate()
    assert signed(view("SHIP"), key) == signed(view("SHIP"), key)


def test_jwk_is_rfc8037_okp_of_the_same_key() -> None:
    key = Ed25519PrivateKey.generate()
    raw = keys.raw_public(key.public_key())
    v = keys.public_view(raw, active=True, source="file", created_at=None)
    padded = v.jwk.x + "=" * (-len(v.jwk.x) % 4)
    assert base64.urlsafe_b64decode(padded) == raw
    assert (v.jwk.kty, v.jwk.crv, v.jwk.alg, v.jwk.kid) == ("OKP", "Ed25519", "EdDSA", v.keyid)


def test_key_file_must_be_an_unencrypted_ed25519_pem(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    good = tmp_path / "good.pem"
    good.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    loaded = keys.load_key_file(good)
    assert loaded.keyid == keys.keyid_of(keys.raw_public(key.public_key()))
    assert "private" not in repr(loaded)  # never printed by a log line or a traceback
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    for path in (garbage, tmp_path / "missing.pem"):
        with pytest.raises(SettingsError, match="GATEHOUSE_SIGNING_KEY_FILE"):
            keys.load_key_file(path)
