"""GPG and SSH signing keys through the gateway against the real signature-verifier.

Skipped until the signature-verifier's key handlers are on this branch (they are written on
another one); after the merge these run: upload, list, read, delete, ADMIN for a user, and
the refusals only the owner can make (a duplicate, a secret key).
"""

from __future__ import annotations

import importlib.util
import warnings
from typing import Any

import pgpy
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from pgpy.constants import EllipticCurveOID, HashAlgorithm, KeyFlags, PubKeyAlgorithm

from tests.conftest import StartService
from tests.integration.test_gateway_support import Api, gateway_api


def _verifier_handles_keys() -> bool:
    try:
        return (
            importlib.util.find_spec("services.signature_verifier.signatures.handlers") is not None
        )
    except ModuleNotFoundError:
        return False


pytestmark = pytest.mark.skipif(
    not _verifier_handles_keys(),
    reason="the signature-verifier's key handlers "
    "(services.signature_verifier.signatures.handlers) are not on this branch yet",
)

GPG = "/api/v1/user/gpg_keys"
SSH = "/api/v1/user/ssh_signing_keys"


def _gpg_key(email: str = "ada@example.org") -> pgpy.PGPKey:
    warnings.simplefilter("ignore")  # pgpy warns about its own defaults
    key = pgpy.PGPKey.new(PubKeyAlgorithm.EdDSA, EllipticCurveOID.Ed25519)
    key.add_uid(
        pgpy.PGPUID.new("Ada", email=email),
        usage={KeyFlags.Certify, KeyFlags.Sign},
        hashes=[HashAlgorithm.SHA256],
    )
    return key


def _ssh_public_key() -> str:
    public = ed25519.Ed25519PrivateKey.generate().public_key()
    line = public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return line.decode() + " ada@laptop"


async def _stack(start_service: StartService) -> Any:
    await start_service("signature-verifier")
    return gateway_api(start_service)


async def _ada(api: Api) -> str:
    user = await api.call(
        "POST",
        "/api/v1/users",
        json={"login": "ada", "name": "Ada", "emails": [{"email": "ada@example.org"}]},
    )
    assert user.status == 201, user.body
    key = await api.call(
        "POST", "/api/v1/api-keys", json={"name": "a", "roles": ["VIEWER"], "user": "ada"}
    )
    assert key.status == 201, key.body
    return str(key.body["token"])


async def test_gpg_key_upload_list_get_delete(start_service: StartService) -> None:
    async with await _stack(start_service) as api:
        ada = await _ada(api)
        key = _gpg_key()
        armored = str(key.pubkey)
        added = await api.call(
            "POST", GPG, token=ada, json={"armored_public_key": armored, "name": "laptop"}
        )
        assert added.status == 201, added.body
        key_id = added.body["id"]
        assert added.headers["Location"] == f"{GPG}/{key_id}"
        assert added.body["key_id"] == key.fingerprint.keyid.upper()
        assert added.body["primary_key_id"] is None and added.body["can_sign"] is True
        assert added.body["emails"] == [{"email": "ada@example.org", "verified": False}]
        assert set(added.body["backfill"]) == {"state", "done", "total"}

        listed = await api.call("GET", GPG, token=ada)
        assert listed.status == 200 and [k["id"] for k in listed.body] == [key_id]
        public = await api.call("GET", "/api/v1/users/ada/gpg_keys", token=ada)
        assert [k["id"] for k in public.body] == [key_id]
        got = await api.call("GET", f"{GPG}/{key_id}", token=ada)
        assert got.status == 200 and got.body["raw_key"] == added.body["raw_key"]

        duplicate = await api.call("POST", GPG, token=ada, json={"armored_public_key": armored})
        assert duplicate.status == 422, duplicate.body
        secret = await api.call("POST", GPG, token=ada, json={"armored_public_key": str(key)})
        assert secret.status == 422, secret.body

        assert (await api.call("DELETE", f"{GPG}/{key_id}", token=ada)).status == 204
        assert (await api.call("GET", f"{GPG}/{key_id}", token=ada)).status == 404
        assert (await api.call("GET", GPG, token=ada)).body == []


async def test_ssh_signing_key_upload_list_get_delete(start_service: StartService) -> None:
    async with await _stack(start_service) as api:
        ada = await _ada(api)
        line = _ssh_public_key()
        added = await api.call("POST", SSH, token=ada, json={"key": line, "title": "laptop"})
        assert added.status == 201, added.body
        key_id = added.body["id"]
        assert added.headers["Location"] == f"{SSH}/{key_id}"
        assert added.body["title"] == "laptop"
        assert added.body["key"].split()[:2] == line.split()[:2]
        assert added.body["fingerprint"].startswith("SHA256:")

        listed = await api.call("GET", SSH, token=ada)
        assert [k["id"] for k in listed.body] == [key_id]
        got = await api.call("GET", f"{SSH}/{key_id}", token=ada)
        assert got.status == 200 and got.body["id"] == key_id
        duplicate = await api.call("POST", SSH, token=ada, json={"key": line})
        assert duplicate.status == 422, duplicate.body
        assert (await api.call("DELETE", f"{SSH}/{key_id}", token=ada)).status == 204
        assert (await api.call("GET", f"{SSH}/{key_id}", token=ada)).status == 404


async def test_admin_manages_a_users_keys(start_service: StartService) -> None:
    async with await _stack(start_service) as api:
        ada = await _ada(api)
        body = {"armored_public_key": str(_gpg_key().pubkey)}
        gpg = await api.call(
            "POST",
            "/api/v1/users/ada/gpg_keys",
            json=body,
            headers={"Idempotency-Key": "admin-gpg-1"},
        )
        assert gpg.status == 201, gpg.body
        again = await api.call(
            "POST",
            "/api/v1/users/ada/gpg_keys",
            json=body,
            headers={"Idempotency-Key": "admin-gpg-1"},
        )
        assert again.status == 201 and again.body["id"] == gpg.body["id"]  # recorded once
        ssh = await api.call(
            "POST", "/api/v1/users/ada/ssh_signing_keys", json={"key": _ssh_public_key()}
        )
        assert ssh.status == 201, ssh.body
        # Ada sees them as her own.
        assert [k["id"] for k in (await api.call("GET", GPG, token=ada)).body] == [gpg.body["id"]]
        assert [k["id"] for k in (await api.call("GET", SSH, token=ada)).body] == [ssh.body["id"]]
        for path, key_id in (("gpg_keys", gpg.body["id"]), ("ssh_signing_keys", ssh.body["id"])):
            gone = await api.call("DELETE", f"/api/v1/users/ada/{path}/{key_id}")
            assert gone.status == 204, gone.body
        assert (await api.call("GET", GPG, token=ada)).body == []
