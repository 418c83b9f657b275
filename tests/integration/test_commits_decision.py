"""A commit's detail carries its release decision (stitched by the gateway from
release-decision) when one was made, and still answers when release-decision is down."""

from __future__ import annotations

import tempfile
from pathlib import Path

from services.signature_verifier.mirrors.paths import mirror_path
from tests.conftest import StartService
from tests.integration.test_commits_support import (
    add_mirror,
    build_history,
    git_lines,
    mirror_into,
)
from tests.integration.test_release_decision_support import gate_stack

REPO = "acme/gadgets"


async def test_detail_stitches_the_decision(start_service: StartService) -> None:
    source = Path(tempfile.mkdtemp(prefix="gatehouse-commits-")) / "work"
    build_history(source)
    verifier = await start_service("signature-verifier", data_dir=tempfile.mkdtemp())
    mirror = mirror_path(verifier.settings, REPO)
    mirror_into(source, mirror)
    await add_mirror(verifier.settings, REPO)
    head, older, oldest = git_lines(mirror, "log", "--format=%H")[:3]
    async with gate_stack(start_service) as g:
        project = await g.project(REPO)
        await g.scan(project["slug"], REPO, head)
        decided = await g.decided(REPO, head, decision="NO_SHIP")

        reply = await g.call("GET", f"/api/v1/repos/{REPO}/commits/{head[:12]}")
        assert reply.status == 200, reply.body
        assert reply.body["sha"] == head
        assert reply.body["decision"] == {
            "decision": "NO_SHIP",
            "blockers": max(decided["blocker_total"], len(decided["blockers"])),
        }
        assert reply.body["decision"]["blockers"] > 0
        # Never decided: no member at all (not null).
        reply = await g.call("GET", f"/api/v1/repos/{REPO}/commits/{older}")
        assert reply.status == 200 and "decision" not in reply.body
        # The listing never carries decisions.
        listing = await g.call("GET", f"/api/v1/repos/{REPO}/commits?per_page=2")
        assert [item["sha"] for item in listing.body] == [head, older]
        assert all("decision" not in item for item in listing.body)

        # release-decision away: the commit still reads, without a decision.
        await g.decisions.stop()
        reply = await g.call("GET", f"/api/v1/repos/{REPO}/commits/{oldest}")
        assert reply.status == 200 and "decision" not in reply.body
