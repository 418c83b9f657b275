"""The registry's artifact operations as the package protocols call them (RPC to the
scanner): registration rules (format, path, PyPI never reusing a file name), quotas refusing
with ``quota.exceeded`` and nothing else, concurrent uploads of one path across two scanner
replicas (exactly one wins), the simple index, removal; then blocks and the quarantine over
HTTP with the download verdicts they cause, and a replay giving identical tables."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

from contracts.events.registry import BlockHit
from contracts.rpc import registry as rpc
from services.registry import definition
from services.scanner.registry.projection import NAME
from services.scanner.registry.store import PROJECTION_TABLES
from shared.errors import GatehouseError
from shared.jobs import projection_caught_up
from shared.service import Runtime
from shared.settings import Settings
from tests.conftest import StartService, table_digest, wait_until
from tests.integration.registry_meta_support import (
    MISSING_SBOM,
    digest_of,
    register_request,
    registry,
)
from tests.integration.test_license_support import events


async def test_registration_rules_quotas_concurrency_and_the_index(
    start_service: StartService,
) -> None:
    async with registry(start_service) as r:
        await r.api.new_project("acme")
        pypi = await r.new_repo("acme", "pypi", quota_bytes=100, quota_artifacts=4)
        generic = await r.new_repo("acme", "files", format="generic")

        first = await r.register(
            pypi["id"],
            "Demo_Pkg-1.0-py3-none-any.whl",
            name="Demo_Pkg",
            version="1.0",
            size=30,
            requires_python=">=3.9",
            metadata_digest=digest_of("METADATA"),
            provenance={"repo": "acme/demo", "commit": "a" * 40},
        )
        assert first.project_id == (await r.http("GET", "/api/v1/projects/acme")).body["id"]
        assert (first.format, first.kind, first.size, first.quarantined) == (
            "pypi",
            "wheel",
            30,
            False,
        )
        assert first.provenance is not None and first.provenance.commit == "a" * 40
        assert first.uploaded_by == "apikey:uploader"
        # Read-your-writes: the usage counts the upload at once.
        repo = await r.ask(rpc.REPOSITORY_GET, rpc.RepositoryRef(id=pypi["id"]), rpc.Repository)
        assert (repo.used_bytes, repo.artifact_count) == (30, 1)
        by_slug = rpc.RepositoryRef(project_id=first.project_id, slug="pypi")
        assert (await r.ask(rpc.REPOSITORY_GET, by_slug, rpc.Repository)).id == pypi["id"]

        # ---- refusals, none of which publishes ------------------------------------------
        await r.settled()  # the scan on upload publishes on its own
        before = await r.counts()
        for request, status, code in (
            (register_request(pypi["id"], first.path, name="Demo_Pkg"), 409, "artifact_exists"),
            (register_request(pypi["id"], "x.bin", kind="file"), 400, "repository_format_mismatch"),
            (register_request(generic["id"], "a.whl", name="a"), 400, "repository_format_mismatch"),
            (
                register_request(pypi["id"], "nameless-1.0.tar.gz", kind="sdist"),
                422,
                "invalid_artifact",
            ),
            (
                register_request(generic["id"], "../etc/passwd", kind="file"),
                422,
                "invalid_artifact",
            ),
            (register_request(generic["id"], "/abs", kind="file"), 422, "invalid_artifact"),
            (register_request("repo_" + "0" * 32, "a", kind="file"), 404, "repository_not_found"),
        ):
            refused = await r.refused(rpc.ARTIFACT_REGISTER, request)
            assert (refused.status, refused.code) == (status, code), (request.path, refused.detail)
        assert await r.counts() == before

        # ---- quotas: quota.exceeded and nothing else ------------------------------------
        big = await r.refused(
            rpc.ARTIFACT_REGISTER,
            register_request(
                pypi["id"], "demo_pkg-2.0.tar.gz", name="demo-pkg", kind="sdist", size=71
            ),
        )
        assert (big.status, big.code) == (413, "quota_exceeded")
        assert (
            big.extra["quota"],
            big.extra["limit"],
            big.extra["used"],
            big.extra["attempted"],
        ) == (
            "bytes",
            100,
            30,
            71,
        )
        after = await r.counts()
        assert {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)} == {
            "quota.exceeded": 1
        }
        (exceeded,) = await events(r.scanner, "quota.exceeded")
        assert (exceeded.kind, exceeded.limit, exceeded.used, exceeded.attempted) == (
            "bytes",
            100,
            30,
            71,
        )
        assert (exceeded.repo_id, exceeded.principal) == (pypi["id"], "apikey:uploader")
        await r.register(
            pypi["id"], "demo_pkg-2.0.tar.gz", name="demo-pkg", version="2.0", kind="sdist", size=70
        )

        # Concurrent uploads of one path, on two scanner replicas: exactly one wins.
        await start_service("scanner")
        await r.http("PATCH", f"/api/v1/repos/{pypi['id']}", json={"quota_bytes": None})
        path = "Other-1.0-py3-none-any.whl"
        outcomes = await asyncio.gather(
            *(
                r.register(pypi["id"], path, name="other", version="1.0", digest=digest_of(str(i)))
                for i in range(6)
            ),
            return_exceptions=True,
        )
        won = [o for o in outcomes if isinstance(o, rpc.Artifact)]
        lost = [o for o in outcomes if isinstance(o, GatehouseError)]
        assert len(won) == 1 and len(lost) == 5, outcomes
        assert {e.code for e in lost} == {"artifact_exists"}
        # The artifact quota holds under concurrency too: 3 of 4 used, 5 try, 1 fits.
        outcomes = await asyncio.gather(
            *(
                r.register(
                    pypi["id"], f"many-{i}.tar.gz", name="many", version=str(i), kind="sdist"
                )
                for i in range(5)
            ),
            return_exceptions=True,
        )
        assert sum(isinstance(o, rpc.Artifact) for o in outcomes) == 1, outcomes
        full = [o for o in outcomes if isinstance(o, GatehouseError)]
        assert {(e.status, e.code) for e in full} == {(507, "quota_exceeded")}
        repo = await r.ask(rpc.REPOSITORY_GET, rpc.RepositoryRef(id=pypi["id"]), rpc.Repository)
        assert repo.artifact_count == 4
        assert (await r.counts("artifact.uploaded")) == {"artifact.uploaded": 4}

        # ---- the simple index -----------------------------------------------------------
        await r.settled()  # a scan's verdict changes the index's revision too
        index = rpc.ArtifactIndexRequest(repo=rpc.RepositoryRef(id=pypi["id"]))
        names = await r.ask(rpc.ARTIFACT_INDEX, index, rpc.ArtifactIndexReply)
        assert names.names == ["demo-pkg", "many", "other"] and names.files == []
        files = await r.ask(
            rpc.ARTIFACT_INDEX,
            rpc.ArtifactIndexRequest(repo=index.repo, name="DEMO.pkg"),
            rpc.ArtifactIndexReply,
        )
        assert [(f.path, f.available) for f in files.files] == [
            ("Demo_Pkg-1.0-py3-none-any.whl", True),
            ("demo_pkg-2.0.tar.gz", True),
        ]
        assert files.files[0].requires_python == ">=3.9"
        assert files.files[0].metadata_digest == digest_of("METADATA")
        assert files.revision == names.revision > 0
        nothing = await r.refused(
            rpc.ARTIFACT_INDEX, rpc.ArtifactIndexRequest(repo=index.repo, name="absent")
        )
        assert (nothing.status, nothing.code) == (404, "artifact_not_found")

        # ---- removal: PyPI never reuses a file name, generic paths may come back --------
        remove = rpc.ArtifactRemoveRequest(repo=index.repo, path=first.path)
        removed = await r.ask(rpc.ARTIFACT_REMOVE, remove, rpc.Artifact)
        assert removed.id == first.id
        reused = await r.refused(
            rpc.ARTIFACT_REGISTER, register_request(pypi["id"], first.path, name="Demo_Pkg")
        )
        assert reused.code == "artifact_exists" and "never used twice" in reused.detail
        again = await r.refused(rpc.ARTIFACT_REMOVE, remove)
        assert again.code == "artifact_not_found"
        after_removal = await r.ask(
            rpc.ARTIFACT_INDEX,
            rpc.ArtifactIndexRequest(repo=index.repo, name="demo-pkg"),
            rpc.ArtifactIndexReply,
        )
        assert [f.path for f in after_removal.files] == ["demo_pkg-2.0.tar.gz"]
        assert after_removal.revision > files.revision
        tool = await r.register(generic["id"], "bin/tool", kind="file")
        await r.ask(
            rpc.ARTIFACT_REMOVE,
            rpc.ArtifactRemoveRequest(repo=rpc.RepositoryRef(id=generic["id"]), path="bin/tool"),
            rpc.Artifact,
        )
        back = await r.register(generic["id"], "bin/tool", kind="file")
        assert back.id != tool.id
        (deleted, _) = await events(r.scanner, "artifact.deleted")
        assert (deleted.id, deleted.reason) == (first.id, "deleted")

        # A command re-run (same command id: a retry after a lost answer) answers the first
        # attempt's artifact and publishes nothing more.
        request = register_request(generic["id"], "bin/once", kind="file")
        command = str(uuid.uuid4())
        replies = [
            await r.ask(rpc.ARTIFACT_REGISTER, request, rpc.Artifact, command_id=command)
            for _ in range(2)
        ]
        assert replies[0] == replies[1]
        uploaded = await events(r.scanner, "artifact.uploaded")
        assert [e.path for e in uploaded].count("bin/once") == 1


async def test_blocks_quarantine_verdicts_and_replay(
    start_service: StartService, settings: Settings
) -> None:
    async with registry(start_service) as r:
        await r.api.new_project("acme")
        repo = await r.new_repo("acme", "pypi")
        held = await r.new_repo("acme", "held", quarantine_new=True)
        files = await r.new_repo("acme", "files", format="generic")
        evil = await r.register(
            repo["id"], "evil_pkg-1.5-py3-none-any.whl", name="Evil_Pkg", version="1.5"
        )
        newer = await r.register(
            repo["id"], "evil_pkg-2.0-py3-none-any.whl", name="Evil_Pkg", version="2.0"
        )
        tool = await r.register(
            files["id"], "tools/evil-tool.bin", kind="file", digest=digest_of("bytes")
        )
        assert (await r.fetch(repo["id"], evil.path)).verdict == "allowed"

        # ---- block definitions: 422 naming the fields, nothing published ----------------
        await r.settled()
        before = await r.counts()
        for body, fields in (
            ({"reason": "r"}, ["$.purl", "$.digest", "$.name_pattern"]),
            ({"purl": "pkg:pypi/x", "digest": tool.digest, "reason": "r"}, ["$.purl", "$.digest"]),
            ({"purl": "pkg:pypi/x", "versions": "vers:npm/>=1.0.0", "reason": "r"}, ["$.versions"]),
            (
                {"purl": "pkg:pypi/x", "versions": "vers:pypi/>=bogus!", "reason": "r"},
                ["$.versions"],
            ),
            ({"name_pattern": "../*", "reason": "r"}, ["$.name_pattern"]),
            (
                {"digest": tool.digest, "reason": "r", "blocked_until": "2001-01-01T00:00:00Z"},
                ["$.blocked_until"],
            ),
        ):
            reply = await r.http("POST", "/api/admin/security", json=body)
            assert reply.status == 422 and reply.code == "invalid_block", reply.body
            assert [e["field"] for e in reply.body["errors"]] == fields, body
        assert (
            await r.http("POST", "/api/admin/security", json={"purl": "pkg:pypi/x"})
        ).status == 422
        assert await r.counts() == before
        _, viewer = await r.api.new_key("VIEWER")
        assert (await r.http("GET", "/api/admin/security", token=viewer)).status == 403

        # ---- a purl block with a vers range ---------------------------------------------
        created = await r.http(
            "POST",
            "/api/admin/security",
            json={
                "purl": "pkg:pypi/evil-pkg",
                "versions": "vers:pypi/>=1.0|<2.0",
                "reason": "Confirmed-malicious sample",
                "customer_message": "Use evil-pkg 2.0 or later.",
                "blocked_until": "2999-12-31T00:00:00Z",
            },
        )
        assert created.status == 201, created.body
        block = created.body
        assert created.headers["Location"] == f"/api/admin/security/{block['id']}"
        assert (block["source"], block["hits"]) == ("manual", 0)
        assert block["created_by"].startswith("apikey:")
        blocked = await r.fetch(repo["id"], evil.path)
        assert blocked.verdict == "blocked" and blocked.block is not None
        assert (blocked.block.block_id, blocked.block.reason, blocked.block.customer_message) == (
            block["id"],
            "Confirmed-malicious sample",
            "Use evil-pkg 2.0 or later.",
        )
        assert blocked.block.blocked_until == dt.datetime(2999, 12, 31, tzinfo=dt.UTC)
        assert (await r.fetch(repo["id"], newer.path)).verdict == "allowed"
        listing = await r.ask(
            rpc.ARTIFACT_INDEX,
            rpc.ArtifactIndexRequest(repo=rpc.RepositoryRef(id=repo["id"]), name="evil-pkg"),
            rpc.ArtifactIndexReply,
        )
        assert [(f.path, f.available) for f in listing.files] == [
            (evil.path, False),
            (newer.path, True),
        ]

        # Hits come from the gateway's block.hit events.
        for _ in range(2):
            await r.api.runtime.bus.publish_acked(
                BlockHit(
                    block_id=block["id"],
                    artifact_id=evil.id,
                    repo_id=repo["id"],
                    digest=evil.digest,
                    principal="anonymous",
                ),
                aggregate=f"block:{block['id']}",
                actor="anonymous",
            )

        async def two_hits() -> bool:
            reply = await r.http("GET", f"/api/admin/security/{block['id']}")
            return bool(reply.body["hits"] == 2)

        await wait_until(two_hits)

        # ---- digest and name-pattern blocks; format limits; PATCH and expiry ------------
        by_digest = await r.http(
            "POST",
            "/api/admin/security",
            json={"digest": tool.digest, "format": "pypi", "reason": "bad bytes"},
        )
        assert by_digest.status == 201
        assert (await r.fetch(files["id"], tool.path)).verdict == "allowed"  # pypi only
        pattern = await r.http(
            "POST", "/api/admin/security", json={"name_pattern": "EVIL_*", "reason": "typosquats"}
        )
        assert pattern.status == 201
        tool_verdict = await r.fetch(files["id"], tool.path)
        assert tool_verdict.verdict == "blocked" and tool_verdict.block is not None
        assert tool_verdict.block.block_id == pattern.body["id"]
        # Of several matching blocks the oldest is named.
        evil_verdict = await r.fetch(repo["id"], evil.path)
        assert evil_verdict.block is not None and evil_verdict.block.block_id == block["id"]
        stale = await r.http(
            "PATCH",
            f"/api/admin/security/{pattern.body['id']}",
            json={"reason": "x"},
            headers={"If-Match": '"v1"'},
        )
        assert stale.status == 412
        ended = await r.http(
            "PATCH",
            f"/api/admin/security/{pattern.body['id']}",
            json={"blocked_until": "2001-01-01T00:00:00Z"},
            headers={"If-Match": pattern.headers["ETag"]},
        )
        assert ended.status == 200 and ended.body["blocked_until"] == "2001-01-01T00:00:00Z"
        assert (await r.fetch(files["id"], tool.path)).verdict == "allowed"  # expired
        bad_patch = await r.http(
            "PATCH",
            f"/api/admin/security/{by_digest.body['id']}",
            json={"versions": "vers:pypi/>=1"},
        )
        assert bad_patch.status == 422 and bad_patch.body["errors"][0]["field"] == "$.versions"
        narrowed = await r.http(
            "PATCH",
            f"/api/admin/security/{block['id']}",
            json={"versions": "vers:pypi/>=1.0|<=2.0"},
        )
        assert narrowed.status == 200
        assert (await r.fetch(repo["id"], newer.path)).verdict == "blocked"
        page = await r.http("GET", "/api/admin/security?limit=2")
        assert [b["id"] for b in page.body["items"]] == [block["id"], by_digest.body["id"]]
        assert page.body["next_cursor"]
        deleted = await r.http("DELETE", f"/api/admin/security/{block['id']}")
        assert deleted.status == 204
        assert (await r.fetch(repo["id"], evil.path)).verdict == "allowed"
        assert (await r.http("GET", f"/api/admin/security/{block['id']}")).code == "block_not_found"

        # ---- quarantine -----------------------------------------------------------------
        # Their SBOM is missing: the scan on upload fails, so they stay held.
        waiting = await r.register(
            held["id"],
            "held-1.0.tar.gz",
            name="held",
            version="1.0",
            kind="sdist",
            sbom_digests=[MISSING_SBOM],
        )
        doomed = await r.register(
            held["id"],
            "held-2.0.tar.gz",
            name="held",
            version="2.0",
            kind="sdist",
            sbom_digests=[MISSING_SBOM],
        )
        assert waiting.quarantined and doomed.quarantined
        await r.settled()
        verdict = await r.fetch(held["id"], waiting.path)
        assert verdict.verdict == "quarantined" and verdict.block is not None
        assert verdict.block.block_id.replace("-", "") == waiting.id.removeprefix("art_")
        names = await r.ask(
            rpc.ARTIFACT_INDEX,
            rpc.ArtifactIndexRequest(repo=rpc.RepositoryRef(id=held["id"]), name="held"),
            rpc.ArtifactIndexReply,
        )
        assert [f.available for f in names.files] == [False, False]
        queue = await r.http("GET", "/api/admin/quarantine?project_id=acme")
        assert [a["id"] for a in queue.body["items"]] == [doomed.id, waiting.id]
        not_held = await r.http(
            "POST", f"/api/admin/quarantine/{evil.id}/release", json={"reason": "looked at it"}
        )
        assert not_held.status == 409 and not_held.code == "not_quarantined"
        released = await r.http(
            "POST", f"/api/admin/quarantine/{waiting.id}/release", json={"reason": "looked at it"}
        )
        assert released.status == 200 and released.body["quarantined"] is False
        assert (await r.fetch(held["id"], waiting.path)).verdict == "allowed"
        rejected = await r.http(
            "POST", f"/api/admin/quarantine/{doomed.id}/reject", json={"reason": "ships a miner"}
        )
        assert rejected.status == 200 and rejected.body["id"] == doomed.id
        assert (await r.http("GET", f"/api/v1/artifacts/{doomed.id}")).status == 404
        twice = await r.http(
            "POST", f"/api/admin/quarantine/{doomed.id}/reject", json={"reason": "again"}
        )
        assert twice.status == 404
        queue = await r.http("GET", "/api/admin/quarantine")
        assert queue.body["items"] == []
        (release_event,) = await events(r.scanner, "artifact.quarantine-released")
        assert (release_event.id, release_event.reason) == (waiting.id, "looked at it")
        (reject_event,) = await events(r.scanner, "artifact.deleted")
        assert (reject_event.id, reject_event.reason, reject_event.detail) == (
            doomed.id,
            "quarantine_rejected",
            "ships a miner",
        )
        await r.settled()
        runner = r.scanner.runners[NAME]
        await wait_until(lambda: projection_caught_up(r.scanner.bus, runner))
        await r.scanner.stop()  # replay takes the projection's leader lock

    # ---- replay from sequence 0 gives identical tables --------------------------------------
    # (the jobs table's lease columns record how the work went, not the stream)
    tables = [t for t in PROJECTION_TABLES if t != "registry_jobs"]
    live = await table_digest(settings.database_url, "scanner", tables)
    runtime = Runtime(definition("scanner"), settings.with_(service="scanner"))
    await runtime.start(serve=False)
    try:
        assert await runtime.runners[NAME].replay() > 0
    finally:
        await runtime.stop()
    assert await table_digest(settings.database_url, "scanner", tables) == live
