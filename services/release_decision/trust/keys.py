"""The signing key of attestations and the public keys that verify them.

The key comes from ``settings.signing_key_file`` (an unencrypted PKCS#8 PEM Ed25519 key;
its public half is recorded in ``file_keys`` so it stays listed after a rotation), else
from the ``signing_keys`` table, where the first start of the first replica generates
one (replicas starting together are serialised by an advisory lock, so all sign with the
same key). Private key bytes are never logged, published or returned.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import asyncpg
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from contracts.rpc.trust import Jwk, PublicKeyView
from shared.db import advisory_key
from shared.settings import SettingsError

_GENERATE_LOCK = advisory_key("release_decision:signing_key")


@dataclass(frozen=True, kw_only=True)
class SigningKey:
    keyid: str
    private: Ed25519PrivateKey = field(repr=False)
    source: Literal["file", "generated"]
    created_at: dt.datetime | None = None

    @property
    def public_raw(self) -> bytes:
        return raw_public(self.private.public_key())


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def keyid_of(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()


def public_view(
    public_raw: bytes,
    *,
    active: bool,
    source: Literal["file", "generated"],
    created_at: dt.datetime | None,
) -> PublicKeyView:
    keyid = keyid_of(public_raw)
    pem = (
        Ed25519PublicKey.from_public_bytes(public_raw)
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )
    x = base64.urlsafe_b64encode(public_raw).rstrip(b"=").decode("ascii")
    return PublicKeyView(
        keyid=keyid,
        active=active,
        source=source,
        created_at=created_at,
        pem=pem,
        jwk=Jwk(x=x, kid=keyid),
    )


def load_key_file(path: Path) -> SigningKey:
    """The key in ``path``; a clear SettingsError (never the key's bytes) when unusable."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SettingsError(
            f"GATEHOUSE_SIGNING_KEY_FILE {path}: cannot read it ({exc.strerror})"
        ) from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise SettingsError(
            f"GATEHOUSE_SIGNING_KEY_FILE {path}: not an unencrypted PEM private key"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SettingsError(f"GATEHOUSE_SIGNING_KEY_FILE {path}: not an Ed25519 key")
    return SigningKey(keyid=keyid_of(raw_public(key.public_key())), private=key, source="file")


async def generated_key(pool: asyncpg.Pool) -> SigningKey:
    """The oldest stored key, generated (once, whoever starts first) when there is none."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _GENERATE_LOCK)
        row = await conn.fetchrow(
            "SELECT keyid, private_key, created_at FROM release_decision.signing_keys "
            "ORDER BY created_at, keyid LIMIT 1"
        )
        if row is None:
            key = Ed25519PrivateKey.generate()
            public = raw_public(key.public_key())
            private = key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
            row = await conn.fetchrow(
                "INSERT INTO release_decision.signing_keys (keyid, private_key, public_key) "
                "VALUES ($1, $2, $3) RETURNING keyid, private_key, created_at",
                keyid_of(public),
                private,
                public,
            )
    return SigningKey(
        keyid=row["keyid"],
        private=Ed25519PrivateKey.from_private_bytes(bytes(row["private_key"])),
        source="generated",
        created_at=row["created_at"],
    )


async def remember_file_key(pool: asyncpg.Pool, key: SigningKey) -> SigningKey:
    """Record the public half of a key read from a file (idempotent, every replica may), so
    it stays listed after the next rotation; the key with its first-seen time."""
    created_at = await pool.fetchval(
        "INSERT INTO release_decision.file_keys (keyid, public_key) VALUES ($1, $2) "
        "ON CONFLICT (keyid) DO UPDATE SET keyid = EXCLUDED.keyid RETURNING created_at",
        key.keyid,
        key.public_raw,
    )
    return replace(key, created_at=created_at)


async def public_keys(pool: asyncpg.Pool, active: SigningKey) -> list[PublicKeyView]:
    """The active key first, then every other key that ever signed here, generated or from
    a file (they verify earlier attestations), oldest first."""
    rows = await pool.fetch(
        "SELECT public_key, created_at, 'generated' AS source FROM release_decision.signing_keys "
        "UNION ALL SELECT public_key, created_at, 'file' FROM release_decision.file_keys "
        "ORDER BY created_at, source"
    )
    views = [
        public_view(
            active.public_raw, active=True, source=active.source, created_at=active.created_at
        )
    ]
    seen = {active.keyid}
    for row in rows:
        raw = bytes(row["public_key"])
        if keyid_of(raw) not in seen:
            seen.add(keyid_of(raw))
            views.append(
                public_view(raw, active=False, source=row["source"], created_at=row["created_at"])
            )
    return views
