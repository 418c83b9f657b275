"""The signed release gate over time, through the gateway and without any webhook: the
decision's and the badge's HEAD move with the git mirror (a push to the source, then a
sync); revoking a key and uploading it again, and verifying the committer's e-mail, change
the verification and the decision follows."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from tests.conftest import StartService, wait_until
from tests.integration.git_mirrors_support import git_pushes, mirror_stack
from tests.integration.signed_gate_support import (
    EMAIL,
    Caller,
    Source,
    blocker_codes,
    decision_when,
    mirrored,
    signer,
    signing_key,
    upload,
    verification,
)
from tests.integration.test_gateway_support import NO_TOKEN

# Signatures are the only evidence here: no SBOM (and so no scanner) is needed to SHIP.
SIGNED_ONLY = {"require_signed_commits": True, "required_evidence": ["signature"]}


async def signed_project(api: Caller, repo: str, **fields: Any) -> str:
    """A project listing ``repo`` whose policy ships signed commits; its slug."""
    slug = f"p-{uuid.uuid4().hex[:10]}"
    created = await api.call(
        "POST", "/api/v1/projects", json={"slug": slug, "name": slug, "repos": [repo], **fields}
    )
    assert created.status == 201, created.body
    policy = await api.call("PUT", f"/api/v1/releases/policy?project={slug}", json=SIGNED_ONLY)
    assert policy.status == 200, policy.body
    return slug


async def configure_mirror(api: Caller, repo: str, source: Source) -> None:
    """The mirror of ``repo`` configured and holding the source's head."""
    reply = await api.call("PUT", f"/api/v1/repos/{repo}/git", json={"clone_url": source.url})
    assert reply.status == 201, reply.body
    await mirrored(api, repo, str(source.repo.head.target))


async def badge_of_head(api: Caller, repo: str) -> str:
    reply = await api.call("GET", f"/api/v1/trust/badge?repo={repo}", token=NO_TOKEN)
    assert reply.status == 200, reply.body
    return str(reply.body.split("<title>gatehouse: ", 1)[1].split("<", 1)[0])


def is_(decision: str, *, commit: str | None = None, verified: bool | None = None) -> Any:
    def reached(view: dict[str, Any]) -> bool:
        return (
            view["decision"] == decision
            and (commit is None or view["commit"] == commit)
            and (verified is None or view["evidence"].get("signature_verified") is verified)
        )

    return reached


async def test_head_follows_the_mirror_without_a_webhook(
    start_service: StartService, tmp_path: Path
) -> None:
    repo = "acme/no-hook"
    await start_service("release-decision")
    async with mirror_stack(start_service) as (api, verifier):
        token = await signer(api, "octo")
        octo = signing_key()
        await upload(api, token, octo)
        await signed_project(api, repo, badge="public")
        source = Source(tmp_path / "source")
        first = source.commit(key=octo)
        await configure_mirror(api, repo, source)

        view = await decision_when(api, repo, "HEAD", is_("SHIP", verified=True))
        assert view["commit"] == first
        assert await badge_of_head(api, repo) == "Assured"

        # A push nobody announces (signed by a key nobody uploaded: a commit that gets a
        # verdict, so the badge has a decision to show), and a sync.
        second = source.commit(key=signing_key())
        sync = await api.call("POST", f"/api/v1/repos/{repo}/sync")
        assert sync.status == 202, sync.body
        await mirrored(api, repo, second)
        pushes = await git_pushes(verifier, repo)
        assert [p.commit for p in pushes] == [first, second]
        assert all(p.head and p.branch == "main" for p in pushes)

        view = await decision_when(api, repo, "HEAD", is_("NO_SHIP", commit=second, verified=False))
        assert blocker_codes(view) == ["invalid_signature", "no_evidence"], view["blockers"]

        async def badge_blocked() -> bool:
            return await badge_of_head(api, repo) == "Blocked"

        await wait_until(badge_blocked)
        # The older commit's own decision is untouched by the move.
        assert (await decision_when(api, repo, first, is_("SHIP")))["commit"] == first


async def test_revoking_a_key_and_uploading_it_again(
    start_service: StartService, tmp_path: Path
) -> None:
    repo = "acme/revoked"
    await start_service("release-decision")
    async with mirror_stack(start_service) as (api, _verifier):
        token = await signer(api, "octo")
        octo = signing_key()
        key_id = (await upload(api, token, octo))["id"]
        await signed_project(api, repo)
        source = Source(tmp_path / "source")
        commit = source.commit(key=octo)
        await configure_mirror(api, repo, source)
        assert (await verification(api, repo, commit, reason="valid"))["verified"] is True
        await decision_when(api, repo, commit, is_("SHIP", verified=True))

        revoked = await api.call("DELETE", f"/api/v1/user/gpg_keys/{key_id}", token=token)
        assert revoked.status == 204, revoked.body
        seen = await verification(api, repo, commit, reason="unsigned")
        assert seen["verified"] is False
        view = await decision_when(api, repo, commit, is_("NO_SHIP", verified=False))
        assert "unsigned_commit" in blocker_codes(view), view["blockers"]

        # The same key again is a new upload (a new id), and its backfill re-stamps the commit.
        again = await upload(api, token, octo)
        assert again["id"] != key_id
        await verification(api, repo, commit, reason="valid")
        view = await decision_when(api, repo, commit, is_("SHIP", verified=True))
        assert view["blockers"] == []


async def test_verifying_the_email_restamps_and_the_decision_follows(
    start_service: StartService, tmp_path: Path
) -> None:
    repo = "acme/unverified"
    await start_service("release-decision")
    async with mirror_stack(start_service) as (api, _verifier):
        token = await signer(api, "octo", verified=False)
        octo = signing_key()
        await upload(api, token, octo)
        await signed_project(api, repo)
        source = Source(tmp_path / "source")
        commit = source.commit(key=octo)
        await configure_mirror(api, repo, source)
        seen = await verification(api, repo, commit, reason="unverified_email")
        assert seen["verified"] is False
        view = await decision_when(api, repo, commit, is_("NO_SHIP", verified=False))
        blockers = {b["code"]: b["message"] for b in view["blockers"]}
        assert "unverified_email" in blockers["invalid_signature"], view["blockers"]

        verified = await api.call("POST", f"/api/v1/users/octo/emails/{EMAIL}/verify")
        assert verified.status == 200, verified.body
        assert [(e["email"], e["verified"]) for e in verified.body["emails"]] == [(EMAIL, True)]
        seen = await verification(api, repo, commit, reason="valid")
        assert seen["verified"] is True
        view = await decision_when(api, repo, commit, is_("SHIP", verified=True))
        assert view["blockers"] == []
