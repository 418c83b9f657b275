"""DSSE signing of in-toto Statements (pure: the key is passed in, Ed25519 is deterministic).

PAE (the DSSE pre-authentication encoding) binds the payload type to the payload, so a
signature over one kind of document can never be replayed as another:
``"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`` with LEN the decimal byte length.
"""

from __future__ import annotations

import base64
from typing import Any

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contracts.rpc.release_decision import DecisionView
from contracts.rpc.trust import (
    PAYLOAD_TYPE,
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    DsseEnvelope,
    DsseSignature,
)


def pae(payload_type: str, payload: bytes) -> bytes:
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def statement(view: DecisionView) -> dict[str, Any]:
    """The in-toto Statement v1 of a decision: its subject is the commit."""
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": f"git+{view.repo}", "digest": {"gitCommit": view.commit.lower()}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": msgspec.to_builtins(view),
    }


def sign_envelope(payload: bytes, *, key: Ed25519PrivateKey, keyid: str) -> DsseEnvelope:
    signature = key.sign(pae(PAYLOAD_TYPE, payload))
    return DsseEnvelope(
        payload=base64.b64encode(payload).decode("ascii"),
        signatures=[DsseSignature(keyid=keyid, sig=base64.b64encode(signature).decode("ascii"))],
    )


def attest(view: DecisionView, *, key: Ed25519PrivateKey, keyid: str) -> DsseEnvelope:
    """The decision signed: canonical JSON (sorted keys) so equal decisions sign equally."""
    payload = msgspec.json.encode(statement(view), order="sorted")
    return sign_envelope(payload, key=key, keyid=keyid)
