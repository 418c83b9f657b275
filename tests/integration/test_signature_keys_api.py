"""GPG and SSH signing keys through the signature-verifier's RPC (real NATS + PostgreSQL):
add / list / get / delete, precise refusals, duplicates, hostile keys, Idempotency-Key."""

from __future__ import annotations

import base64
import time
import uuid

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from contracts.rpc import signatures as rpc
from services.signature_verifier.signatures.handlers import KeyHandlers
from services.signature_verifier.signatures.wiring import RUNNER_KEY
from shared.errors import GatehouseError
from shared.rpc import CallContext
from shared.service import Runtime
from tests.conftest import StartService
from tests.integration.signatures_support import (
    count_events,
    create_user,
    pgp_key,
    rpc_call,
    ssh_public_line,
)

EMAIL = "ann@example.com"


async def _service(start_service: StartService) -> Runtime:
    runtime = await start_service("signature-verifier")
    await create_user(runtime, "ann", (EMAIL, True), ("ann@old.example", False))
    await create_user(runtime, "bob", ("bob@example.com", True))
    return runtime


async def _add_gpg(runtime: Runtime, armored: str, *, login: str = "ann", **kw: str) -> rpc.GpgKey:
    return await rpc_call(
        runtime,
        rpc.GPG_KEY_ADD,
        rpc.GpgKeyAddRequest(login=login, key=rpc.GpgKeyBody(armored_public_key=armored)),
        rpc.GpgKey,
        **kw,
    )


async def _refusal(coro: object) -> GatehouseError:
    with pytest.raises(GatehouseError) as caught:
        await coro  # type: ignore[misc]
    return caught.value


async def _events(runtime: Runtime, subject: str) -> int:
    return await count_events(runtime, subject)


async def test_gpg_key_lifecycle(start_service: StartService) -> None:
    runtime = await _service(start_service)
    key = pgp_key(EMAIL)
    added = await _add_gpg(runtime, str(key.pubkey))
    assert added.key_id == key.fingerprint.keyid.upper()
    assert added.emails == [rpc.GpgKeyEmail(email=EMAIL, verified=True)]
    assert added.can_sign and added.can_certify and not added.revoked
    assert added.backfill.state in ("pending", "running", "done")
    assert added.id >= 1 and added.raw_key == str(key.pubkey)

    page = await rpc_call(
        runtime, rpc.GPG_KEYS_LIST, rpc.KeysListRequest(login="ANN"), rpc.GpgKeysPage
    )
    assert [k.id for k in page.items] == [added.id] and not page.has_next
    got = await rpc_call(
        runtime, rpc.GPG_KEY_GET, rpc.KeyRequest(id=added.id, login="ann"), rpc.GpgKey
    )
    assert got.key_id == added.key_id
    # Bob's view of Ann's key: 404, as if it did not exist.
    assert (
        await _refusal(
            rpc_call(runtime, rpc.GPG_KEY_GET, rpc.KeyRequest(id=added.id, login="bob"), rpc.GpgKey)
        )
    ).code == "key_not_found"
    # The same key, by anyone: refused.
    dup = await _refusal(_add_gpg(runtime, str(key.pubkey), login="bob"))
    assert (dup.status, dup.code) == (422, "duplicate_key")

    deleted = await rpc_call(
        runtime, rpc.GPG_KEY_DELETE, rpc.KeyRequest(id=added.id, login="ann"), rpc.GpgKey
    )
    assert deleted.revoked
    assert await _events(runtime, "gpgkey.revoked") == 1
    gone = await _refusal(
        rpc_call(runtime, rpc.GPG_KEY_GET, rpc.KeyRequest(id=added.id), rpc.GpgKey)
    )
    assert gone.status == 404
    # Once revoked, the key may be uploaded again (a new id).
    again = await _add_gpg(runtime, str(key.pubkey))
    assert again.id != added.id


async def test_gpg_key_refusals_are_precise_and_publish_nothing(
    start_service: StartService,
) -> None:
    runtime = await _service(start_service)
    with_secret = pgp_key(EMAIL)
    cases = {
        "malformed_key": "not a key at all",
        "secret_key": str(with_secret),
    }
    for code, text in cases.items():
        refused = await _refusal(_add_gpg(runtime, text))
        assert (refused.status, refused.code) == (422, code), refused
    unknown = await _refusal(_add_gpg(runtime, str(pgp_key(EMAIL).pubkey), login="nobody"))
    assert (unknown.status, unknown.code) == (404, "user_not_found")
    nul = await _refusal(_add_gpg(runtime, "-----BEGIN PGP PUBLIC KEY BLOCK-----\x00"))
    assert nul.status == 422  # the RPC edge refuses NUL characters before the handler
    # Corrupt: a real key with its base64 body damaged.
    armored = str(pgp_key(EMAIL).pubkey).splitlines()
    armored[3] = "!!!!" + armored[3][4:]
    corrupt = await _refusal(_add_gpg(runtime, "\n".join(armored)))
    assert (corrupt.status, corrupt.code) == (422, "malformed_key")
    assert await _events(runtime, "gpgkey.>") == 0


def _uid_packet(text: bytes) -> bytes:
    return bytes([0xC0 | 13, len(text)]) + text


async def test_hostile_keys_are_refused_fast(start_service: StartService) -> None:
    runtime = await _service(start_service)
    key = pgp_key(EMAIL)
    # 10,000 user ids: refused by the header walk, before pgpy.
    data = bytes(key.pubkey.__bytes__()) + b"".join(
        _uid_packet(f"u{i}".encode()) for i in range(10_000)
    )
    body = base64.encodebytes(data).decode()
    armored = f"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n{body}-----END PGP PUBLIC KEY BLOCK-----\n"
    started = time.monotonic()
    refused = await _refusal(_add_gpg(runtime, armored))
    assert (refused.status, refused.code) == (422, "key_too_large"), refused
    assert time.monotonic() - started < 3
    # 900 KB over NATS: past the event's bound, a 413 without parsing.
    started = time.monotonic()
    big = await _refusal(_add_gpg(runtime, "A" * 900_000))
    assert (big.status, big.code) == (413, "key_too_large")
    # 50 MB cannot cross NATS (the gateway bounds bodies); the handler itself bounds it too.
    runner = runtime.state[RUNNER_KEY]
    handlers = KeyHandlers(
        pool=runtime.pool, bus=runtime.bus, runner=runner, settings=runtime.settings
    )
    huge = rpc.GpgKeyAddRequest(
        login="ann", key=rpc.GpgKeyBody(armored_public_key="-----BEGIN " + "A" * 50_000_000)
    )
    started = time.monotonic()
    with pytest.raises(GatehouseError) as caught:
        await handlers.gpg_add(huge, CallContext(request_id="", actor="test"))
    assert (caught.value.status, caught.value.code) == (413, "key_too_large")
    assert time.monotonic() - started < 1
    assert await _events(runtime, "gpgkey.>") == 0


async def test_idempotent_add_publishes_once(start_service: StartService) -> None:
    runtime = await _service(start_service)
    armored = str(pgp_key(EMAIL).pubkey)
    command = str(uuid.uuid4())
    first = await _add_gpg(runtime, armored, command_id=command)
    second = await _add_gpg(runtime, armored, command_id=command)
    assert first.id == second.id
    assert await _events(runtime, "gpgkey.added") == 1


async def test_ssh_signing_keys(start_service: StartService) -> None:
    runtime = await _service(start_service)
    line = ssh_public_line(ed25519.Ed25519PrivateKey.generate())
    added = await rpc_call(
        runtime,
        rpc.SSH_KEY_ADD,
        rpc.SshKeyAddRequest(login="ann", key=rpc.SshKeyBody(key=line + " laptop", title="t")),
        rpc.SshSigningKey,
    )
    assert added.key == line and added.title == "t" and added.fingerprint.startswith("SHA256:")
    page = await rpc_call(
        runtime, rpc.SSH_KEYS_LIST, rpc.KeysListRequest(login="ann", per_page=1), rpc.SshKeysPage
    )
    assert [k.id for k in page.items] == [added.id] and not page.has_next
    dup = await _refusal(
        rpc_call(
            runtime,
            rpc.SSH_KEY_ADD,
            rpc.SshKeyAddRequest(login="bob", key=rpc.SshKeyBody(key=line)),
            rpc.SshSigningKey,
        )
    )
    assert (dup.status, dup.code) == (422, "duplicate_key")
    for text, code in (
        ("ssh-ed25519 !!!", "malformed_key"),
        ("ssh-dss AAAA", "unsupported_key_type"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----", "secret_key"),
    ):
        refused = await _refusal(
            rpc_call(
                runtime,
                rpc.SSH_KEY_ADD,
                rpc.SshKeyAddRequest(login="ann", key=rpc.SshKeyBody(key=text)),
                rpc.SshSigningKey,
            )
        )
        assert (refused.status, refused.code) == (422, code)
    # An admin (login None) deletes anyone's key.
    await rpc_call(runtime, rpc.SSH_KEY_DELETE, rpc.KeyRequest(id=added.id), rpc.SshSigningKey)
    assert await _events(runtime, "sshkey.revoked") == 1
    page = await rpc_call(
        runtime, rpc.SSH_KEYS_LIST, rpc.KeysListRequest(login="ann"), rpc.SshKeysPage
    )
    assert page.items == []
