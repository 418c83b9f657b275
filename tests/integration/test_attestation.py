"""Signed decisions over HTTP: the keys endpoint, the signing key's lifecycle, and an
attestation verified as an outside verifier would (PAE rebuilt from the DSSE spec here,
cryptography's Ed25519 verify), never with the signing code."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.release_decision.trust.keys import generated_key
from shared.settings import SettingsError
from tests.conftest import StartService, wait_until
from tests.integration.test_badge import push_head
from tests.integration.test_gateway_support import NO_TOKEN, gateway_api
from tests.integration.test_release_decision_support import CLEAN, gate_stack, sha


def spec_pae(payload_type: str, body: bytes) -> bytes:
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def verified_statement(envelope: dict[str, Any], keys: list[dict[str, Any]]) -> dict[str, Any]:
    """The Statement of ``envelope`` once its one signature verifies with the listed key."""
    [signature] = envelope["signatures"]
    [key] = [k for k in keys if k["keyid"] == signature["keyid"]]
    public = serialization.load_pem_public_key(key["pem"].encode())
    assert isinstance(public, Ed25519PublicKey)
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert hashlib.sha256(raw).hexdigest() == key["keyid"]
    body = base64.b64decode(envelope["payload"], validate=True)
    public.verify(base64.b64decode(signature["sig"]), spec_pae(envelope["payloadType"], body))
    return dict(json.loads(body))


async def test_keys_are_public_and_the_generated_key_survives_a_restart(
    start_service: StartService,
) -> None:
    decisions = await start_service("release-decision")
    async with gateway_api(start_service) as api:
        first = await api.call("GET", "/api/v1/trust/keys", token=NO_TOKEN)
        assert first.status == 200, first.body
        [key] = first.body["keys"]
        assert key["active"] and key["source"] == "generated" and key["algorithm"] == "ed25519"
        assert key["jwk"]["kid"] == key["keyid"] and key["jwk"]["crv"] == "Ed25519"
        assert "PRIVATE" not in json.dumps(first.body)
        await decisions.stop()
        await start_service("release-decision")
        again = await api.call("GET", "/api/v1/trust/keys", token=NO_TOKEN)
        assert again.status == 200 and again.body["keys"] == first.body["keys"]


async def test_a_key_file_signs_and_the_generated_key_stays_listed(
    start_service: StartService, tmp_path: Path
) -> None:
    decisions = await start_service("release-decision")
    async with gateway_api(start_service) as api:
        generated = (await api.call("GET", "/api/v1/trust/keys", token=NO_TOKEN)).body["keys"]
        await decisions.stop()
        key_file = tmp_path / "signing.pem"
        key_file.write_bytes(
            Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        await start_service("release-decision", signing_key_file=str(key_file))
        listed = (await api.call("GET", "/api/v1/trust/keys", token=NO_TOKEN)).body["keys"]
        assert [(k["source"], k["active"]) for k in listed] == [
            ("file", True),
            ("generated", False),
        ]
        assert listed[1]["keyid"] == generated[0]["keyid"]


def _key_file(path: Path) -> Path:
    path.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


async def test_rotating_from_one_key_file_to_another_keeps_the_old_key_listed(
    start_service: StartService, tmp_path: Path
) -> None:
    """What the first file's key signed still verifies after a second file (and then the
    generated key) took over: its public half stays listed."""
    first = _key_file(tmp_path / "first.pem")
    async with gate_stack(start_service, signing_key_file=str(first)) as g:
        project = await g.project("acme/rotated")
        commit = sha()
        await g.scan(project["slug"], "acme/rotated", commit, CLEAN)
        await g.decided("acme/rotated", commit, decision="SHIP")
        path = f"/api/v1/releases/decision/attestation?repo=acme/rotated&commit={commit}"
        signed = (await g.call("GET", path)).body
        await g.decisions.stop()
        second = _key_file(tmp_path / "second.pem")
        for key_file in (second, first, second):  # back and forth: each recorded once
            replica = await start_service("release-decision", signing_key_file=str(key_file))
            await replica.stop()
        await start_service("release-decision")
        keys = (await g.call("GET", "/api/v1/trust/keys", token=NO_TOKEN)).body["keys"]
        assert [(k["source"], k["active"]) for k in keys] == [
            ("generated", True),
            ("file", False),
            ("file", False),
        ]
        assert verified_statement(signed, keys)["predicate"]["decision"] == "SHIP"


async def test_an_unusable_key_file_stops_the_start(
    start_service: StartService, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    with pytest.raises(SettingsError, match="GATEHOUSE_SIGNING_KEY_FILE"):
        await start_service("release-decision", signing_key_file=str(bad))


async def test_attestation_of_a_decision_verifies_with_the_published_key(
    start_service: StartService,
) -> None:
    async with gate_stack(start_service) as g:
        project = await g.project("acme/signed")
        commit = sha()
        await g.scan(project["slug"], "acme/signed", commit)
        view = await g.decided("acme/signed", commit, decision="NO_SHIP")
        reply = await g.call(
            "GET", f"/api/v1/releases/decision/attestation?repo=acme/signed&commit={commit}"
        )
        assert reply.status == 200, reply.body
        assert reply.body["payloadType"] == "application/vnd.in-toto+json"
        keys = (await g.call("GET", "/api/v1/trust/keys", token=NO_TOKEN)).body["keys"]
        statement = verified_statement(reply.body, keys)
        assert statement["_type"] == "https://in-toto.io/Statement/v1"
        assert statement["subject"] == [
            {"name": "git+acme/signed", "digest": {"gitCommit": commit}}
        ]
        assert statement["predicateType"] == (
            "https://gatehouse.dev/attestation/release-decision/v1"
        )
        predicate = statement["predicate"]
        assert predicate["decision"] == "NO_SHIP" and predicate["revision"] == view["revision"]
        assert predicate["blockers"] == view["blockers"]


async def test_attestation_bad_input_and_scope(start_service: StartService) -> None:
    async with gate_stack(start_service) as g:
        mine = await g.project("acme/mine")
        await g.project("acme/theirs")
        path = "/api/v1/releases/decision/attestation"
        unknown = await g.call("GET", f"{path}?repo=acme/nowhere&commit={sha()}")
        assert (unknown.status, unknown.code) == (404, "repo_not_found")
        for query in (
            "repo=acme/mine&commit=xyz",
            "repo=acme/mine",
            f"repo=acme/mine&commit={sha()}&x=1",
        ):
            bad = await g.call("GET", f"{path}?{query}")
            assert (bad.status, bad.code) == (422, "validation_failed"), query
        anonymous = await g.call("GET", f"{path}?repo=acme/mine&commit={sha()}", token=NO_TOKEN)
        assert anonymous.status == 401
        _, scoped = await g.s.api.new_key("VIEWER", project=mine["id"])
        own = await g.call("GET", f"{path}?repo=acme/mine&commit={sha()}", token=scoped)
        assert own.status == 200, own.body
        other = await g.call("GET", f"{path}?repo=acme/theirs&commit={sha()}", token=scoped)
        assert (other.status, other.code) == (404, "repo_not_found")


async def test_replicas_starting_together_generate_one_key(start_service: StartService) -> None:
    decisions = await start_service("release-decision")
    await decisions.pool.execute("DELETE FROM release_decision.signing_keys")
    made = await asyncio.gather(*(generated_key(decisions.pool) for _ in range(5)))
    assert len({key.keyid for key in made}) == 1
    assert await decisions.pool.fetchval("SELECT count(*) FROM release_decision.signing_keys") == 1


async def test_attestation_of_head_names_the_resolved_commit(start_service: StartService) -> None:
    async with gate_stack(start_service) as g:
        project = await g.project("acme/headed")
        commit = sha()
        await g.scan(project["slug"], "acme/headed", commit, pkgs=CLEAN)
        await g.decided("acme/headed", commit, decision="SHIP")
        await push_head(g, "acme/headed", commit)
        path = "/api/v1/releases/decision/attestation?repo=acme/headed&commit=HEAD"

        async def signed() -> bool:
            return (await g.call("GET", path)).status == 200

        await wait_until(signed)
        envelope = (await g.call("GET", path)).body
        keys = (await g.call("GET", "/api/v1/trust/keys", token=NO_TOKEN)).body["keys"]
        statement = verified_statement(envelope, keys)
        assert statement["subject"][0]["digest"] == {"gitCommit": commit}
        assert statement["predicate"]["decision"] == "SHIP"
