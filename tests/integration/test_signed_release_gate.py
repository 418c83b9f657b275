"""The release gate with ``require_signed_commits``, end to end through the gateway: a git
repository the test builds (signed by an uploaded key, by an unknown key, unsigned, and a
tampered signature), mirrored by the signature-verifier from a ``file://`` URL, verified
off the request path, and decided by release-decision from ``commit.verified``."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import StartService
from tests.integration.signed_gate_support import (
    EMAIL,
    Source,
    mirrored,
    signer,
    signing_key,
    upload,
    verification,
)
from tests.integration.test_release_decision_support import CLEAN, gate_stack

REPO = "acme/signed-gate"


async def test_signed_commits_ship_and_the_others_do_not(
    start_service: StartService, tmp_path: Path
) -> None:
    await start_service("signature-verifier", git_allow_file_urls=True)
    async with gate_stack(start_service) as g:
        project = await g.project(REPO)
        slug = project["slug"]
        octo = signing_key(EMAIL)
        await upload(g, await signer(g, "octo"), octo)

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
        await mirrored(g, REPO, tampered)

        for commit in (signed, unsigned, stranger, tampered):
            await g.scan(slug, REPO, commit, CLEAN)

        assert (await verification(g, REPO, signed))["reason"] == "valid"
        good = await g.decided(REPO, signed, decision="SHIP")
        assert good["blockers"] == []

        unsigned_view = await g.decided(REPO, unsigned, decision="NO_SHIP")
        assert ("unsigned_commit", unsigned) in [
            (b["code"], b["ref"]) for b in unsigned_view["blockers"]
        ]

        for commit, reason in ((stranger, "unknown_key"), (tampered, "invalid")):
            assert (await verification(g, REPO, commit))["reason"] == reason
            view = await g.decided(REPO, commit, decision="NO_SHIP")
            codes = {b["code"]: b["message"] for b in view["blockers"]}
            assert reason in codes["invalid_signature"], view["blockers"]
            assert "no_evidence" in codes

        detail = await g.call("GET", f"/api/v1/repos/{REPO}/commits/{signed}")
        assert detail.body["decision"] == {"decision": "SHIP", "blockers": 0}
        listing = await g.call("GET", f"/api/v1/repos/{REPO}/commits?per_page=2")
        assert [c["sha"] for c in listing.body] == [tampered, stranger]
        assert 'rel="next"' in listing.headers["Link"]
