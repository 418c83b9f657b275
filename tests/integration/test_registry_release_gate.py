"""The release gate knows artifacts, through the real scanner, release-decision and gateway:
``?artifact=`` answers the provenance commit's decision plus ``artifact_blocked``, or a
decision from the artifact's own scan when it names no commit; a commit's decision gains
``artifact_blocked`` when a block starts to apply to one of its artifacts and loses it when
the block is lifted; an SBOM carried in a wheel (PEP 770) becomes a scan of the project;
promotion is allowed, refused with the blockers, overridden by an APPROVER only (the reason
in the event); a replay of the decisions from zero is identical."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from contracts.rpc import registry as rpc
from services.registry import definition
from services.release_decision.decisions.store import PROJECTION_TABLES
from shared.blobs import BlobStore
from shared.service import Runtime
from shared.settings import Settings
from tests.conftest import StartService, table_digest, wait_until
from tests.integration.registry_gate_support import (
    artifact_decision,
    digest,
    import_osv,
    scanned,
    stored_sboms,
    wheel,
)
from tests.integration.registry_meta_support import Registry, registry
from tests.integration.test_license_support import events
from tests.integration.test_release_decision_support import (
    CLEAN,
    VULNERABLE,
    advisories,
    sha,
)
from tests.integration.test_scan_support import cyclonedx_json

REPO = "acme/web"


@dataclass
class Gate:
    r: Registry
    decisions: Runtime
    blobs: BlobStore

    async def commit_decision(
        self, commit: str, *, decision: str, codes: list[str]
    ) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        async def reached() -> bool:
            reply = await self.r.http(
                "GET", f"/api/v1/releases/decision?repo={REPO}&commit={commit}"
            )
            if reply.status != 200:
                return False
            seen.clear()
            seen.update(reply.body)
            found = sorted({b["code"] for b in reply.body["blockers"]})
            return bool(reply.body["decision"] == decision and found == sorted(codes))

        await wait_until(reached, timeout=20)
        return seen

    async def upload(
        self, repo_id: str, name: str, version: str, *, sbom: bytes | None = None, **fields: Any
    ) -> rpc.Artifact:
        """A wheel as the PyPI upload registers it: its SBOMs stored, then registered."""
        data = wheel(name, version, sbom=sbom)
        return await self.r.register(
            repo_id,
            f"{name.replace('-', '_')}-{version}-py3-none-any.whl",
            name=name,
            version=version,
            size=len(data),
            digest=digest(data),
            sbom_digests=await stored_sboms(self.blobs, data),
            **fields,
        )


@asynccontextmanager
async def gate(start_service: StartService) -> AsyncIterator[Gate]:
    decisions = await start_service("release-decision")
    async with registry(start_service) as r:
        await import_osv(r, advisories())
        yield Gate(r=r, decisions=decisions, blobs=await BlobStore.open(r.scanner.bus))


async def test_artifact_decisions_blocks_and_promotion(
    start_service: StartService, settings: Settings
) -> None:
    async with gate(start_service) as g:
        r = g.r
        project = await r.api.new_project("acme", repos=[REPO])
        staging = await r.new_repo("acme", "staging")
        release = await r.new_repo("acme", "release")
        files = await r.new_repo("acme", "files", format="generic")

        # ---- provenance: the commit's decision ------------------------------------------
        built = sha()
        scan = await r.api.call(
            "POST",
            f"/api/v1/projects/acme/sboms?repo={REPO}&commit={built}",
            data=cyclonedx_json(CLEAN),
            headers={"Content-Type": "application/json"},
        )
        assert scan.status == 202, scan.body
        await g.commit_decision(built, decision="SHIP", codes=[])
        web = await g.upload(
            staging["id"], "web", "1.0", provenance={"repo": REPO, "commit": built}
        )
        assert (await scanned(r, web.id))["scan_status"] == "passed"
        shipped = await artifact_decision(r, web.digest, decision="SHIP", codes=[])
        assert (shipped["repo"], shipped["commit"]) == (REPO, built)
        assert shipped["artifact"]["provenance"] == {"repo": REPO, "commit": built}
        assert shipped["artifact"]["artifact_ids"] == [web.id]
        assert shipped["artifact"]["commit_revision"] >= 1

        # ---- a block on the artifact: the commit gains artifact_blocked, then loses it ---
        block = await r.http(
            "POST", "/api/admin/security", json={"digest": web.digest, "reason": "tampered build"}
        )
        assert block.status == 201, block.body
        blocked = await g.commit_decision(built, decision="NO_SHIP", codes=["artifact_blocked"])
        (blocker,) = blocked["blockers"]
        assert blocker["ref"] == block.body["id"] and "tampered build" in blocker["message"]
        assert web.path in blocker["message"]
        view = await artifact_decision(
            r, web.digest, decision="NO_SHIP", codes=["artifact_blocked"]
        )
        assert view["artifact"]["block_ids"] == [block.body["id"]]
        decided = [e for e in await events(g.decisions, "release.decided") if e.commit == built]
        assert decided[-1].cause_event_type == "artifact.blocked"
        _, approver = await r.api.new_key("APPROVER")
        refused = await r.http(
            "POST",
            f"/api/v1/artifacts/{web.id}/promote",
            json={"to_repo": "release", "override": True, "reason": "ship it anyway"},
            token=approver,
        )
        assert refused.status == 409 and refused.code == "promotion_blocked", refused.body
        assert {b["code"] for b in refused.body["blockers"]} == {"artifact_blocked"}
        lifted = await r.http("DELETE", f"/api/admin/security/{block.body['id']}")
        assert lifted.status == 204
        again = await g.commit_decision(built, decision="SHIP", codes=[])
        assert again["revision"] > blocked["revision"]
        await artifact_decision(r, web.digest, decision="SHIP", codes=[])
        # A block that expires: the commit is NO_SHIP until its blocked_until, then SHIP.
        until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
        brief = await r.http(
            "POST",
            "/api/admin/security",
            json={"purl": "pkg:pypi/web", "reason": "embargo", "blocked_until": until.isoformat()},
        )
        assert brief.status == 201, brief.body
        await g.commit_decision(built, decision="NO_SHIP", codes=["artifact_blocked"])
        expired = await g.commit_decision(built, decision="SHIP", codes=[])
        assert dt.datetime.fromisoformat(expired["evaluated_at"]) >= until
        unblocked = [e for e in await events(r.scanner, "artifact.unblocked") if e.id == web.id]
        assert [e.block_id for e in unblocked] == [block.body["id"], brief.body["id"]]

        # ---- promotion: allowed, then the path is taken ---------------------------------
        _, operator = await r.api.new_key("OPERATOR")
        _, viewer = await r.api.new_key("VIEWER")
        body = {"to_repo": "release", "reason": "release 1.0"}
        denied = await r.http(
            "POST", f"/api/v1/artifacts/{web.id}/promote", json=body, token=viewer
        )
        assert denied.status == 403
        promoted = await r.http(
            "POST", f"/api/v1/artifacts/{web.id}/promote", json=body, token=operator
        )
        assert promoted.status == 201, promoted.body
        copy = promoted.body
        assert promoted.headers["Location"] == f"/api/v1/artifacts/{copy['id']}"
        assert (copy["repo_id"], copy["digest"], copy["path"]) == (
            release["id"],
            web.digest,
            web.path,
        )
        assert (copy["promoted_from"], copy["scan_status"]) == (web.id, "passed")
        (event,) = await events(r.scanner, "artifact.promoted")
        assert (event.source_artifact_id, event.decision, event.reason) == (
            web.id,
            "SHIP",
            "release 1.0",
        )
        assert event.override_reason is None and event.blockers == []
        taken = await r.http(
            "POST", f"/api/v1/artifacts/{web.id}/promote", json=body, token=operator
        )
        assert taken.status == 409 and taken.code == "artifact_exists"
        wrong = await r.http(
            "POST", f"/api/v1/artifacts/{web.id}/promote", json={"to_repo": files["id"]}
        )
        assert wrong.status == 400 and wrong.code == "repository_format_mismatch"
        nowhere = await r.http(
            "POST", f"/api/v1/artifacts/{web.id}/promote", json={"to_repo": "nowhere"}
        )
        assert nowhere.status == 422 and nowhere.code == "unknown_repository"
        copied = await artifact_decision(r, web.digest, decision="SHIP", codes=[])
        assert copied["artifact"]["artifact_ids"] == [web.id, copy["id"]]

        # ---- no provenance: an SBOM in the wheel becomes a scan of the project ----------
        lib = await g.upload(staging["id"], "lib", "2.0", sbom=cyclonedx_json(VULNERABLE))
        seen = await scanned(r, lib.id)
        assert seen["scan_status"] == "passed" and seen["scan_id"]
        scans = await r.http("GET", f"/api/v1/projects/{project['id']}/scans")
        listed = {s["id"]: s for s in scans.body["items"]}
        assert seen["scan_id"] in listed, scans.body
        assert listed[seen["scan_id"]]["source_name"] == f"{lib.path} (SBOM)"
        vulnerable = await artifact_decision(
            r, lib.digest, decision="NO_SHIP", codes=["vulnerability"]
        )
        assert (vulnerable["repo"], vulnerable["commit"], vulnerable["revision"]) == ("", "", 0)
        assert vulnerable["artifact"]["scan_id"] == seen["scan_id"]
        assert vulnerable["evidence"]["snapshot_id"] == seen["scan_id"]
        bare = await g.upload(staging["id"], "bare", "1.0")
        await scanned(r, bare.id)
        await artifact_decision(r, bare.digest, decision="NO_SHIP", codes=["no_evidence"])

        # ---- refused, overridden by an APPROVER only, audited ---------------------------
        no_ship = await r.http(
            "POST", f"/api/v1/artifacts/{lib.id}/promote", json={"to_repo": "release"}
        )
        assert no_ship.status == 409 and no_ship.code == "promotion_blocked"
        assert {b["code"] for b in no_ship.body["blockers"]} == {"vulnerability"}
        not_approver = await r.http(
            "POST",
            f"/api/v1/artifacts/{lib.id}/promote",
            json={"to_repo": "release", "override": True, "reason": "accepted risk"},
            token=operator,
        )
        assert not_approver.status == 403 and not_approver.code == "override_not_allowed"
        no_reason = await r.http(
            "POST",
            f"/api/v1/artifacts/{lib.id}/promote",
            json={"to_repo": "release", "override": True},
            token=approver,
        )
        assert no_reason.status == 422 and no_reason.body["errors"][0]["field"] == "$.reason"
        overridden = await r.http(
            "POST",
            f"/api/v1/artifacts/{lib.id}/promote",
            json={"to_repo": release["id"], "override": True, "reason": "accepted risk"},
            token=approver,
        )
        assert overridden.status == 201, overridden.body
        override = (await events(r.scanner, "artifact.promoted"))[-1]
        assert (override.override_reason, override.decision) == ("accepted risk", "NO_SHIP")
        assert {b.code for b in override.blockers} == {"vulnerability"}

        # ---- an SBOM with provenance is the commit's evidence ---------------------------
        later = sha()
        app = await g.upload(
            staging["id"],
            "app",
            "3.0",
            sbom=cyclonedx_json(CLEAN),
            provenance={"repo": REPO, "commit": later},
        )
        await scanned(r, app.id)
        from_wheel = await g.commit_decision(later, decision="SHIP", codes=[])
        assert from_wheel["evidence"]["snapshot_id"] == (await scanned(r, app.id))["scan_id"]

        # ---- bad queries ----------------------------------------------------------------
        for query, status, code in (
            ("artifact=sha256:nothex", 422, None),
            (f"artifact={web.digest}&repo={REPO}", 422, None),
            (f"artifact={web.digest}&as_of=2024-01-01T00:00:00Z", 422, None),
            ("", 422, None),
            ("artifact=sha256:" + "0" * 64, 404, "artifact_not_found"),
        ):
            reply = await r.http("GET", f"/api/v1/releases/decision?{query}")
            assert reply.status == status, (query, reply.body)
            assert code is None or reply.code == code
        _, other = await r.api.new_key("VIEWER", project=(await r.api.new_project())["id"])
        hidden = await r.http(
            "GET", f"/api/v1/releases/decision?artifact={web.digest}", token=other
        )
        assert hidden.status == 404

        # ---- replay of the decisions from zero: identical ------------------------------
        await r.settled()

        async def announced() -> bool:
            return not await g.decisions.pool.fetchval(
                "SELECT count(*) FROM release_decision.decision_jobs WHERE status <> 'done'"
            )

        await wait_until(announced, timeout=20)
        await g.decisions.stop()
    tables = [t for t in PROJECTION_TABLES if t != "decision_jobs"]
    before = await table_digest(settings.database_url, "release_decision", tables)
    replayer = Runtime(definition("release-decision"), settings.with_(service="release-decision"))
    await replayer.start(serve=False)
    try:
        assert await replayer.runners["decisions"].replay() > 0
    finally:
        await replayer.stop()
    assert await table_digest(settings.database_url, "release_decision", tables) == before
