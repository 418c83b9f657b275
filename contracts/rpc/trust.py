"""``svc.release-decision.attestation_get`` / ``trust_keys``: signed decisions and the keys
that verify them.

An attestation is the decision of a (repo, commit) as an in-toto Statement v1 inside a DSSE
envelope, signed with the release-decision service's Ed25519 key. ``DsseEnvelope`` is also the
body of ``GET /api/v1/releases/decision/attestation`` and ``TrustKeys`` the body of
``GET /api/v1/trust/keys``. The private key never leaves the release-decision service.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from contracts.events.scans import Repo
from contracts.rpc.release_decision import CommitRef

SERVICE = "release-decision"
ATTESTATION_GET = "attestation_get"
KEYS_GET = "trust_keys"

# The DSSE payload type of an in-toto Statement, and the Statement's own type.
PayloadType = Literal["application/vnd.in-toto+json"]
PAYLOAD_TYPE: PayloadType = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://gatehouse.dev/attestation/release-decision/v1"

KeyId = Annotated[
    str,
    msgspec.Meta(
        pattern="^[0-9a-f]{64}$",
        description="SHA-256 (hex) of the raw 32-byte Ed25519 public key",
    ),
]


class AttestationRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Query of ``GET /api/v1/releases/decision/attestation``."""

    repo: Repo
    commit: CommitRef


class KeysRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """No parameters."""


class DsseSignature(msgspec.Struct, frozen=True, kw_only=True):
    keyid: KeyId
    sig: Annotated[str, msgspec.Meta(description="Base64 Ed25519 signature over the PAE")]


class DsseEnvelope(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A DSSE envelope (Dead Simple Signing Envelope, v1): ``payload`` is the base64 of the
    in-toto Statement; each signature signs ``PAE(payloadType, payload bytes)``."""

    payload_type: PayloadType = PAYLOAD_TYPE
    payload: Annotated[str, msgspec.Meta(description="Base64 of the in-toto Statement JSON")]
    signatures: list[DsseSignature]


class Jwk(msgspec.Struct, frozen=True, kw_only=True):
    """The public key as a JSON Web Key (RFC 8037, OKP)."""

    kty: Literal["OKP"] = "OKP"
    crv: Literal["Ed25519"] = "Ed25519"
    x: Annotated[str, msgspec.Meta(description="base64url (no padding) of the raw public key")]
    kid: KeyId
    use: Literal["sig"] = "sig"
    alg: Literal["EdDSA"] = "EdDSA"


class PublicKeyView(msgspec.Struct, frozen=True, kw_only=True):
    keyid: KeyId
    algorithm: Literal["ed25519"] = "ed25519"
    active: Annotated[bool, msgspec.Meta(description="True for the key signing now")]
    source: Literal["file", "generated"]
    created_at: dt.datetime | None = None
    pem: Annotated[str, msgspec.Meta(description="SubjectPublicKeyInfo PEM")]
    jwk: Jwk


class TrustKeys(msgspec.Struct, frozen=True, kw_only=True):
    """Every key whose attestations verify: the active one first."""

    keys: list[PublicKeyView]
