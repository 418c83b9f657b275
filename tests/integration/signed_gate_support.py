"""Helpers of the signed release gate tests (no tests here): OpenPGP signing keys, a source
repository grown commit by commit with pygit2 (signed the way git stores it), users with an
API key acting for them, and waiting — through the gateway — for a mirror's head, a
commit's verification and a commit's decision."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import pgpy
import pygit2
from pgpy.constants import HashAlgorithm, KeyFlags, PubKeyAlgorithm

from tests.conftest import wait_until
from tests.integration.test_gateway_support import Reply

EMAIL = "octo@example.org"


class Caller(Protocol):
    """The gateway as the tests call it (``Api`` and ``Gate`` both are)."""

    async def call(self, method: str, path: str, **kwargs: Any) -> Reply: ...


def signing_key(email: str = EMAIL) -> pgpy.PGPKey:
    warnings.simplefilter("ignore")  # pgpy warns about its own defaults
    key = pgpy.PGPKey.new(PubKeyAlgorithm.RSAEncryptOrSign, 2048)
    key.add_uid(
        pgpy.PGPUID.new("Octo", email=email),
        usage={KeyFlags.Certify, KeyFlags.Sign},
        hashes=[HashAlgorithm.SHA256],
    )
    return key


class Source:
    """A non-bare repository whose `main` the test grows commit by commit."""

    def __init__(self, path: Path) -> None:
        self.repo = pygit2.init_repository(str(path), bare=False, initial_head="main")
        self.count = 0

    @property
    def url(self) -> str:
        return Path(self.repo.path).parent.as_uri()

    def commit(
        self, *, key: pgpy.PGPKey | None = None, tamper: bool = False, email: str = EMAIL
    ) -> str:
        self.count += 1
        blob = self.repo.create_blob(f"change {self.count}\n".encode())
        builder = self.repo.TreeBuilder()
        builder.insert("file.txt", blob, pygit2.GIT_FILEMODE_BLOB)
        tree = builder.write()
        person = pygit2.Signature("Octo", email, 1_760_000_000 + self.count, 0)
        parents = [] if self.repo.head_is_unborn else [self.repo.head.target]
        content = self.repo.create_commit_string(
            person, person, f"commit {self.count}\n", tree, parents
        )
        if key is None:
            oid = self.repo.create_commit(
                None, person, person, f"commit {self.count}\n", tree, parents
            )
        else:
            signed = content.replace("commit ", "tampered ") if tamper else content
            signature = str(key.sign(signed.encode(), hash=HashAlgorithm.SHA256))
            oid = self.repo.create_commit_with_signature(content, signature)
        self.repo.references.create("refs/heads/main", oid, force=True)
        return str(oid)


async def signer(api: Caller, login: str, *, email: str = EMAIL, verified: bool = True) -> str:
    """A user with ``email`` and the token of an API key acting for them (VIEWER)."""
    user = await api.call(
        "POST",
        "/api/v1/users",
        json={
            "login": login,
            "name": login.title(),
            "emails": [{"email": email, "verified": verified}],
        },
    )
    assert user.status == 201, user.body
    key = await api.call(
        "POST", "/api/v1/api-keys", json={"name": login, "roles": ["VIEWER"], "user": login}
    )
    assert key.status == 201, key.body
    return str(key.body["token"])


async def upload(api: Caller, token: str, key: pgpy.PGPKey) -> dict[str, Any]:
    """``key``'s public half uploaded for the token's user; its GitHub-shaped view."""
    reply = await api.call(
        "POST", "/api/v1/user/gpg_keys", json={"armored_public_key": str(key.pubkey)}, token=token
    )
    assert reply.status == 201, reply.body
    return dict(reply.body)


async def mirrored(api: Caller, repo: str, head: str) -> None:
    """Wait until the mirror of ``repo`` has fetched ``head``."""

    async def fetched() -> bool:
        reply = await api.call("GET", f"/api/v1/repos/{repo}/git")
        assert reply.status == 200, reply.body
        return bool(reply.body["status"]["head"] == head)

    await wait_until(fetched, timeout=30)


async def verification(
    api: Caller, repo: str, commit: str, *, reason: str | None = None
) -> dict[str, Any]:
    """The commit's ``verification`` once stamped (``reason``: once it reads that)."""
    seen: dict[str, Any] = {}

    async def stamped() -> bool:
        reply = await api.call("GET", f"/api/v1/repos/{repo}/commits/{commit}")
        assert reply.status == 200, reply.body
        seen.clear()
        seen.update(reply.body["verification"])
        if reason is not None:
            return seen["reason"] == reason
        return seen["verified_at"] is not None

    await wait_until(stamped, timeout=30)
    return seen


async def decision_when(
    api: Caller, repo: str, commit: str, reached: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """``GET /api/v1/releases/decision`` of (repo, commit) once ``reached`` holds (``commit``
    may be HEAD: not known until a ``commit.pushed`` of the repo was applied)."""
    seen: dict[str, Any] = {}

    async def answered() -> bool:
        reply = await api.call("GET", f"/api/v1/releases/decision?repo={repo}&commit={commit}")
        if reply.code == "head_unknown":
            return False
        assert reply.status == 200, reply.body
        seen.clear()
        seen.update(reply.body)
        return reached(seen)

    await wait_until(answered, timeout=30)
    return seen


def blocker_codes(view: dict[str, Any]) -> list[str]:
    return [b["code"] for b in view["blockers"]]
