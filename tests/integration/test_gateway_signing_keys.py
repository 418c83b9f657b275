"""API keys acting for a user, and what the gateway decides about the signing-keys routes
before it asks the signature-verifier (who, roles, scope, path, query, body, size).

The happy paths against the real signature-verifier are in ``test_signing_keys_api.py``.
One test here answers ``svc.signature-verifier.*`` with :class:`StandInVerifier`, a stand-in
for the shapes only (Link header, Location, what the gateway sends), until that service
lands on this branch: it checks nothing the real service decides.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec

from contracts.events.signatures import ARMORED_KEY_MAX_CHARS, SSH_KEY_MAX_CHARS
from contracts.rpc import signatures as rpc
from shared.rpc import COMMAND_HEADER, subject
from shared.service import Runtime
from tests.conftest import StartService
from tests.integration.test_gateway_support import Api, gateway_api, stream_count

GPG = "/api/v1/user/gpg_keys"
SSH = "/api/v1/user/ssh_signing_keys"
ARMOR = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nxx\n-----END PGP PUBLIC KEY BLOCK-----\n"


async def _user(api: Api, login: str) -> None:
    reply = await api.call("POST", "/api/v1/users", json={"login": login, "name": login})
    assert reply.status == 201, reply.body


async def _key_for(api: Api, user: str | None, *roles: str, project: str | None = None) -> str:
    body: dict[str, Any] = {"name": "k", "roles": list(roles or ("VIEWER",))}
    if user is not None:
        body["user"] = user
    if project is not None:
        body["project"] = project
    reply = await api.call("POST", "/api/v1/api-keys", json=body)
    assert reply.status == 201, reply.body
    return str(reply.body["token"])


async def test_an_api_key_acts_for_an_existing_user(start_service: StartService) -> None:
    async with gateway_api(start_service) as api:
        await _user(api, "Octo-Cat")
        created = await api.call(
            "POST", "/api/v1/api-keys", json={"name": "ci", "roles": ["VIEWER"], "user": "octo-cat"}
        )
        # The login as the user spells it, on the key, its listing and /me.
        assert created.status == 201 and created.body["user"] == "Octo-Cat", created.body
        listed = await api.call("GET", "/api/v1/api-keys")
        users = {key["id"]: key["user"] for key in listed.body["items"]}
        assert users[created.body["id"]] == "Octo-Cat"
        me = await api.call("GET", "/api/v1/me", token=created.body["token"])
        assert me.status == 200 and me.body["user"] == "Octo-Cat"
        # The bootstrap key, and any key made without one, acts for nobody.
        assert (await api.call("GET", "/api/v1/me")).body["user"] is None
        assert next(k for k in listed.body["items"] if k["bootstrap"])["user"] is None

        published = await stream_count(api.runtime)
        unknown = await api.call(
            "POST", "/api/v1/api-keys", json={"name": "x", "roles": ["VIEWER"], "user": "nobody"}
        )
        assert (unknown.status, unknown.code) == (422, "unknown_user"), unknown.body
        assert unknown.body["errors"][0]["field"] == "$.user"
        for bad in ("", "a\x00b", "-lead", "x" * 40, 7, ["octo-cat"]):
            reply = await api.call(
                "POST", "/api/v1/api-keys", json={"name": "x", "roles": ["VIEWER"], "user": bad}
            )
            assert reply.status == 422 and reply.body["errors"][0]["field"] == "$.user", bad
        # Only ADMIN makes keys, for a user or not.
        viewer = created.body["token"]
        denied = await api.call(
            "POST",
            "/api/v1/api-keys",
            token=viewer,
            json={"name": "x", "roles": ["ADMIN"], "user": "octo-cat"},
        )
        assert (denied.status, denied.code) == (403, "forbidden")
        assert await stream_count(api.runtime) == published  # nothing refused was published


async def test_routes_need_a_user_the_right_role_and_no_project_scope(
    start_service: StartService,
) -> None:
    async with gateway_api(start_service) as api:
        await _user(api, "ada")
        project = await api.new_project()
        viewer_of_ada = await _key_for(api, "ada", "VIEWER")
        scoped_ada = await _key_for(api, "ada", "ADMIN", project=project["slug"])
        published = await stream_count(api.runtime)
        for path in (GPG, SSH):
            for method, where in (("POST", path), ("GET", path), ("GET", f"{path}/1")):
                body = {"armored_public_key": ARMOR} if path == GPG else {"key": "ssh-ed25519 A"}
                # The bootstrap ADMIN key acts for nobody: a stable code saying what to do.
                reply = await api.call(method, where, json=body if method == "POST" else None)
                assert (reply.status, reply.code) == (403, "no_user_for_key"), (where, reply.body)
                assert "user" in reply.body["detail"]
                scoped = await api.call(method, where, token=scoped_ada, json=body)
                assert scoped.status == 403 and scoped.code == "forbidden", scoped.body
            deleted = await api.call("DELETE", f"{path}/1")
            assert (deleted.status, deleted.code) == (403, "no_user_for_key")
            others = path.replace("/user/", "/users/ada/")
            # Another user's keys: anyone reads, only ADMIN writes.
            for method, where in (("POST", others), ("DELETE", f"{others}/1")):
                reply = await api.call(method, where, token=viewer_of_ada, json={})
                assert (reply.status, reply.code) == (403, "forbidden"), where
                assert reply.body["required_roles"] == ["ADMIN"]
            nobody = path.replace("/user/", "/users/nobody/")
            for method, where in (
                ("GET", nobody),
                ("GET", f"{nobody}/1"),
                ("DELETE", f"{nobody}/1"),
            ):
                reply = await api.call(method, where)
                assert (reply.status, reply.code) == (404, "not_found"), where
            # A well-formed request passes the gateway and finds no signature-verifier here.
            asked = await api.call("GET", path, token=viewer_of_ada)
            assert asked.status == 503, asked.body
            asked = await api.call("GET", others, token=viewer_of_ada)
            assert asked.status == 503, asked.body
        assert await stream_count(api.runtime) == published


async def test_bad_ids_queries_and_bodies_are_refused_before_asking(
    start_service: StartService,
) -> None:
    async with gateway_api(start_service) as api:
        await _user(api, "ada")
        ada = await _key_for(api, "ada", "VIEWER")
        published = await stream_count(api.runtime)
        for path in (GPG, SSH, "/api/v1/users/ada/gpg_keys", "/api/v1/users/ada/ssh_signing_keys"):
            for bad_id in (
                "abc",
                "0",
                "-1",
                "1e3",
                "1.0",
                str(2**53 + 1),
                "9" * 40,
                "%00",
                "\u0661",
            ):
                reply = await api.call("GET", f"{path}/{bad_id}", token=ada)
                assert reply.status == 422, (path, bad_id, reply.body)
                assert reply.body["errors"][0]["field"] in ("id", "$.id"), reply.body
            for query in ("per_page=0", "per_page=101", "page=0", "page=x", "sort=x", "page=%00"):
                reply = await api.call("GET", f"{path}?{query}", token=ada)
                assert reply.status == 422, (path, query, reply.body)

        gpg_bodies: list[Any] = [
            {},
            {"armored_public_key": ""},
            {"armored_public_key": "a\x00b"},
            {"armored_public_key": ARMOR, "name": "n\x00"},
            {"armored_public_key": ARMOR, "name": "x" * 256},
            {"armored_public_key": ARMOR, "extra": 1},
            {"armored_public_key": 2**64},
            [ARMOR],
        ]
        ssh_bodies: list[Any] = [{}, {"key": ""}, {"key": "ssh\x00"}, {"key": "k", "title": 1}]
        for path, bodies in ((GPG, gpg_bodies), (SSH, ssh_bodies)):
            for body in bodies:
                reply = await api.call("POST", path, token=ada, json=body)
                assert reply.status == 422, (path, body, reply.body)
            deep = ("[" * 10_000 + "]" * 10_000).encode()
            reply = await api.call(
                "POST", path, token=ada, data=deep, headers={"Content-Type": "application/json"}
            )
            assert (reply.status, reply.code) == (422, "too_deep"), reply.body
            huge = json.dumps({"armored_public_key": "x" * (2 << 20)}).encode()
            reply = await api.call(
                "POST", path, token=ada, data=huge, headers={"Content-Type": "application/json"}
            )
            assert reply.status == 413, reply.body
            wrong_type = await api.call(
                "POST", path, token=ada, data=b"x", headers={"Content-Type": "text/plain"}
            )
            assert wrong_type.status == 415

        # The key itself is bounded by what an event may carry: beyond it, 413 naming it; at
        # the bound the body (under max_body_bytes) goes on to the owner (absent here: 503).
        for path, field, limit in (
            (GPG, "armored_public_key", ARMORED_KEY_MAX_CHARS),
            (SSH, "key", SSH_KEY_MAX_CHARS),
        ):
            over = await api.call("POST", path, token=ada, json={field: "k" * (limit + 1)})
            assert (over.status, over.code) == (413, "key_too_large"), over.body
            assert over.body["limit"] == limit
            at = await api.call("POST", path, token=ada, json={field: "k\n" * (limit // 2)})
            assert at.status == 503, at.body
        assert await stream_count(api.runtime) == published


class StandInVerifier:
    """Answers ``svc.signature-verifier.*`` key operations with fixed shapes and records what
    the gateway sent. A stand-in for the shapes only, until the real service is on this
    branch; everything the service decides is tested in ``test_signing_keys_api.py``."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any], str | None]] = []

    @asynccontextmanager
    async def answering(self, runtime: Runtime) -> AsyncIterator[None]:
        replies: dict[str, Any] = {
            rpc.GPG_KEY_ADD: _gpg_key(7),
            rpc.GPG_KEYS_LIST: rpc.GpgKeysPage(items=[_gpg_key(7)], has_next=True),
            rpc.GPG_KEY_GET: _gpg_key(7),
            rpc.GPG_KEY_DELETE: {},
            rpc.SSH_KEY_ADD: _ssh_key(9),
            rpc.SSH_KEYS_LIST: rpc.SshKeysPage(items=[_ssh_key(9)], has_next=False),
        }
        subscriptions = []
        for operation, answer in replies.items():

            async def respond(msg: Any, operation: str = operation, answer: Any = answer) -> None:
                command = (msg.headers or {}).get(COMMAND_HEADER)
                self.requests.append((operation, msgspec.json.decode(msg.data), command))
                await msg.respond(msgspec.json.encode(answer))

            sub = await runtime.bus.nc.subscribe(subject(rpc.SERVICE, operation), cb=respond)
            subscriptions.append(sub)
        await runtime.bus.nc.flush()
        try:
            yield
        finally:
            for sub in subscriptions:
                await sub.unsubscribe()


def _backfill() -> rpc.Backfill:
    return rpc.Backfill(state="done", done=0, total=0)


def _gpg_key(key_id: int) -> rpc.GpgKey:
    return rpc.GpgKey(
        id=key_id,
        name=None,
        primary_key_id=None,
        key_id="3262EFF25BA0D270",
        public_key="xsBNBF",
        emails=[rpc.GpgKeyEmail(email="ada@x.org", verified=True)],
        subkeys=[],
        can_sign=True,
        can_certify=True,
        can_encrypt_comms=False,
        can_encrypt_storage=False,
        created_at="2026-01-01T00:00:00Z",
        expires_at=None,
        raw_key=ARMOR,
        revoked=False,
        backfill=_backfill(),
    )


def _ssh_key(key_id: int) -> rpc.SshSigningKey:
    return rpc.SshSigningKey(
        id=key_id,
        key="ssh-ed25519 AAAA",
        title="laptop",
        created_at="2026-01-01T00:00:00Z",
        fingerprint="SHA256:x",
        backfill=_backfill(),
    )


async def test_what_the_gateway_sends_and_answers_with_a_stand_in_verifier(
    start_service: StartService,
) -> None:
    async with gateway_api(start_service, public_url="https://gate.example.org/") as api:
        await _user(api, "Ada")
        ada = await _key_for(api, "ada", "AUDITOR")
        stand_in = StandInVerifier()
        async with stand_in.answering(api.runtime):
            added = await api.call(
                "POST",
                GPG,
                token=ada,
                json={"armored_public_key": ARMOR, "name": "laptop"},
                headers={"Idempotency-Key": "gpg-1"},
            )
            assert added.status == 201, added.body
            assert added.headers["Location"] == "/api/v1/user/gpg_keys/7"
            assert added.body["backfill"] == {"state": "done", "done": 0, "total": 0}
            operation, sent, command = stand_in.requests[-1]
            assert operation == rpc.GPG_KEY_ADD and command  # the command id goes along
            assert sent == {"login": "Ada", "key": {"armored_public_key": ARMOR, "name": "laptop"}}

            # A list is GitHub's: a JSON array, Link with next (and prev past page 1), no last.
            listed = await api.call("GET", f"{GPG}?page=2&per_page=5", token=ada)
            assert listed.status == 200 and [k["id"] for k in listed.body] == [7]
            assert listed.headers["Link"] == (
                '<https://gate.example.org/api/v1/user/gpg_keys?page=3&per_page=5>; rel="next", '
                '<https://gate.example.org/api/v1/user/gpg_keys?page=1&per_page=5>; rel="prev"'
            )
            assert stand_in.requests[-1][1] == {"login": "Ada", "page": 2, "per_page": 5}
            last = await api.call("GET", "/api/v1/users/ADA/ssh_signing_keys", token=ada)
            assert last.status == 200 and "Link" not in last.headers
            assert stand_in.requests[-1][1] == {"login": "Ada", "page": 1, "per_page": 30}

            got = await api.call("GET", f"{GPG}/7", token=ada)
            assert got.status == 200 and got.body["key_id"] == "3262EFF25BA0D270"
            assert stand_in.requests[-1][1] == {"id": 7, "login": "Ada"}
            gone = await api.call("DELETE", f"{GPG}/{2**53}", token=ada)
            assert gone.status == 204 and stand_in.requests[-1][1] == {"id": 2**53, "login": "Ada"}

            # ADMIN for a user: the user's login as stored, Location under the user.
            for_ada = await api.call(
                "POST", "/api/v1/users/ada/ssh_signing_keys", json={"key": "ssh-ed25519 AAAA"}
            )
            assert for_ada.status == 201, for_ada.body
            assert for_ada.headers["Location"] == "/api/v1/users/ada/ssh_signing_keys/9"
            assert stand_in.requests[-1][1] == {
                "login": "Ada",
                "key": {"key": "ssh-ed25519 AAAA", "title": ""},
            }
