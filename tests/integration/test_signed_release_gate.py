"""The release gate with ``require_signed_commits``, end to end through the gateway: a git
repository the test builds (signed by an uploaded key, by an unknown key, unsigned, and a
tampered signature), mirrored by the signature-verifier from a ``file://`` URL, verified
off the request path, and decided by release-decision from ``commit.verified``."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pgpy
import pygit2
from pgpy.constants import HashAlgorithm, KeyFlags, PubKeyAlgorithm

from tests.conftest import StartService, wait_until
from tests.integration.test_release_decision_support import CLEAN, Gate, gate_stack

REPO = "acme/signed-gate"
EMAIL = "octo@example.org"


def signing_key(email: str) -> pgpy.PGPKey:
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


async def _mirror_ok(g: Gate, head: str) -> None:
    async def fetched() -> bool:
        reply = await g.call("GET", f"/api/v1/repos/{REPO}/git")
        assert reply.status == 200, reply.body
        return bool(reply.body["status"]["head"] == head)

    await wait_until(fetched, timeout=30)


async def _verification(g: Gate, commit: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def stamped() -> bool:
        reply = await g.call("GET", f"/api/v1/repos/{REPO}/commits/{commit}")
        assert reply.status == 200, reply.body
        seen.update(reply.body["verification"])
        return seen["verified_at"] is not None

    await wait_until(stamped, timeout=30)
    return seen


async def test_signed_commits_ship_and_the_others_do_not(
    start_service: StartService, tmp_path: Path
) -> None:
    await start_service("signature-verifier", git_allow_file_urls=True)
    async with gate_stack(start_service) as g:
        project = await g.project(REPO)
        slug = project["slug"]
        user = await g.call(
            "POST",
            "/api/v1/users",
            json={"login": "octo", "name": "Octo", "emails": [{"email": EMAIL, "verified": True}]},
        )
        assert user.status == 201, user.body
        key = await g.call(
            "POST", "/api/v1/api-keys", json={"name": "octo", "roles": ["VIEWER"], "user": "octo"}
        )
        assert key.status == 201, key.body
        octo = signing_key(EMAIL)
        uploaded = await g.call(
            "POST",
            "/api/v1/user/gpg_keys",
            json={"armored_public_key": str(octo.pubkey)},
            token=key.body["token"],
        )
        assert uploaded.status == 201, uploaded.body

        policy = await g.call(
            "PUT",
            f"/api/v1/releases/policy?project={slug}",
            json={"require_signed_commits": True, "required_evidence": ["sbom", "signature"]},
        )
        assert policy.status == 200, policy.body

        source = Source(tmp_path / "source")
        signed = source.commit(key=octo)
        unsigned = source.commit()
        stranger = source.commit(key=signing_key(EMAIL))
        tampered = source.commit(key=octo, tamper=True)
        mirror = await g.call("PUT", f"/api/v1/repos/{REPO}/git", json={"clone_url": source.url})
        assert mirror.status in (200, 201), mirror.body
        await _mirror_ok(g, tampered)

        for commit in (signed, unsigned, stranger, tampered):
            await g.scan(slug, REPO, commit, CLEAN)

        assert (await _verification(g, signed))["reason"] == "valid"
        good = await g.decided(REPO, signed, decision="SHIP")
        assert good["blockers"] == []

        unsigned_view = await g.decided(REPO, unsigned, decision="NO_SHIP")
        assert ("unsigned_commit", unsigned) in [
            (b["code"], b["ref"]) for b in unsigned_view["blockers"]
        ]

        for commit, reason in ((stranger, "unknown_key"), (tampered, "invalid")):
            assert (await _verification(g, commit))["reason"] == reason
            view = await g.decided(REPO, commit, decision="NO_SHIP")
            codes = {b["code"]: b["message"] for b in view["blockers"]}
            assert reason in codes["invalid_signature"], view["blockers"]
            assert "no_evidence" in codes

        detail = await g.call("GET", f"/api/v1/repos/{REPO}/commits/{signed}")
        assert detail.body["decision"] == {"decision": "SHIP", "blockers": 0}
        listing = await g.call("GET", f"/api/v1/repos/{REPO}/commits?per_page=2")
        assert [c["sha"] for c in listing.body] == [tampered, stranger]
        assert 'rel="next"' in listing.headers["Link"]
