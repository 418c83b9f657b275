"""Helpers for the signature-verifier's key and verification tests: users published on the
bus, RPC calls to the service, and bare repositories of signed commits built with pygit2,
pgpy and ``cryptography`` (the way git stores them)."""

from __future__ import annotations

import base64
import datetime as dt
import struct
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pgpy
import pygit2
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from pgpy.constants import EllipticCurveOID, HashAlgorithm, KeyFlags, PubKeyAlgorithm

from contracts.events.identity import UserCreated, UserEmail, UserEmailVerified
from contracts.rpc import signatures as rpc
from services.signature_verifier.domain.ssh import signed_message
from shared.rpc import CallContext, call
from shared.service import Runtime
from tests.conftest import wait_until

Resp = TypeVar("Resp", bound=msgspec.Struct)


async def rpc_call(
    runtime: Runtime,
    operation: str,
    request: msgspec.Struct,
    response_type: type[Resp],
    *,
    command_id: str = "",
) -> Resp:
    return await call(
        runtime.bus,
        rpc.SERVICE,
        operation,
        request,
        response_type,
        ctx=CallContext(request_id=uuid.uuid4().hex, actor="test", command_id=command_id),
        timeout=20,
    )


async def create_user(runtime: Runtime, login: str, *emails: tuple[str, bool]) -> None:
    await runtime.bus.publish(
        UserCreated(
            login=login,
            name=login.title(),
            emails=[UserEmail(email=e, verified=v) for e, v in emails],
        ),
        aggregate=f"user:{login}",
        actor="test",
    )
    await wait_until(lambda: _user_known(runtime, login))


async def verify_email(runtime: Runtime, login: str, email: str) -> None:
    await runtime.bus.publish(
        UserEmailVerified(login=login, email=email), aggregate=f"user:{login}", actor="test"
    )


async def _user_known(runtime: Runtime, login: str) -> bool:
    return bool(
        await runtime.pool.fetchval(
            "SELECT true FROM signature_verifier.users WHERE login_key = $1", login.lower()
        )
    )


async def count_events(runtime: Runtime, subject: str) -> int:
    """How many events on the stream match ``subject`` (wildcards allowed)."""
    info = await runtime.bus.js.stream_info(runtime.bus.stream, subjects_filter=subject)
    return sum((info.state.subjects or {}).values())


# ---- keys and signatures -------------------------------------------------------------------
def pgp_key(
    email: str,
    *,
    rsa_bits: int | None = None,
    usage: set[KeyFlags] | None = None,
    created: dt.datetime | None = None,
    expires: dt.timedelta | None = None,
) -> pgpy.PGPKey:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if rsa_bits:
            key = pgpy.PGPKey.new(PubKeyAlgorithm.RSAEncryptOrSign, rsa_bits, created=created)
        else:
            key = pgpy.PGPKey.new(PubKeyAlgorithm.EdDSA, EllipticCurveOID.Ed25519, created=created)
        key.add_uid(
            pgpy.PGPUID.new("Test Signer", email=email),
            usage=usage if usage is not None else {KeyFlags.Sign, KeyFlags.Certify},
            hashes=[HashAlgorithm.SHA256],
            key_expiration=expires,
            created=created,
        )
    return key


def pgp_sign(key: pgpy.PGPKey, payload: bytes, *, at: dt.datetime | None = None) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        key._require_usage_flags = False  # a key without the sign flag signs anyway
        return str(key.sign(payload, created=at or dt.datetime.now(dt.UTC)))


def _ssh_string(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


def ssh_public_line(private: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey) -> str:
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )


def ssh_sign(private: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey, payload: bytes) -> str:
    """An armoured SSHSIG (namespace git), as ``ssh-keygen -Y sign`` writes it."""
    public_blob = base64.b64decode(ssh_public_line(private).split()[1])
    message = signed_message(b"git", b"", b"sha512", payload)
    if isinstance(private, ed25519.Ed25519PrivateKey):
        inner = _ssh_string(b"ssh-ed25519") + _ssh_string(private.sign(message))
    else:
        raw = private.sign(message, padding.PKCS1v15(), hashes.SHA512())
        inner = _ssh_string(b"rsa-sha2-512") + _ssh_string(raw)
    blob = (
        b"SSHSIG"
        + struct.pack(">I", 1)
        + b"".join(_ssh_string(p) for p in (public_blob, b"git", b"", b"sha512", inner))
    )
    text = base64.b64encode(blob).decode()
    body = "\n".join(text[i : i + 70] for i in range(0, len(text), 70))
    return f"-----BEGIN SSH SIGNATURE-----\n{body}\n-----END SSH SIGNATURE-----\n"


# ---- repositories --------------------------------------------------------------------------
@dataclass
class RepoBuilder:
    """A bare repository grown one commit at a time on ``refs/heads/main``."""

    path: Path
    repo: pygit2.Repository = field(init=False)
    head: pygit2.Oid | None = None
    count: int = 0

    def __post_init__(self) -> None:
        self.repo = pygit2.init_repository(str(self.path), bare=True)

    def payload(self, email: str, *, when: dt.datetime | None = None) -> tuple[str, Any]:
        self.count += 1
        blob = self.repo.create_blob(f"content {self.count}\n".encode())
        builder = self.repo.TreeBuilder()
        builder.insert("file.txt", blob, pygit2.enums.FileMode.BLOB)
        tree = builder.write()
        seconds = int((when or dt.datetime(2024, 1, 1, tzinfo=dt.UTC)).timestamp()) + self.count
        person = pygit2.Signature("Test Signer", email, seconds, 0)
        parents = [self.head] if self.head is not None else []
        text = self.repo.create_commit_string(
            person, person, f"commit {self.count}\n", tree, parents
        )
        return text, tree

    def commit(
        self,
        email: str,
        *,
        sign: Any = None,
        when: dt.datetime | None = None,
        tamper: bool = False,
    ) -> str:
        """A commit by ``email``; ``sign(payload bytes) -> armoured block`` signs it (a
        string is stored as the block itself); ``tamper`` signs, then changes the message."""
        text, _ = self.payload(email, when=when)
        if sign is None:
            oid_ = self.repo.odb.write(pygit2.enums.ObjectType.COMMIT, text.encode())
        else:
            block = sign if isinstance(sign, str) else sign(text.encode())
            if tamper:
                text = text.replace(f"commit {self.count}", f"commit {self.count} (changed)")
            oid_ = self.repo.create_commit_with_signature(text, block)
        self.head = oid_
        self.repo.references.create("refs/heads/main", oid_, force=True)
        return str(oid_)
