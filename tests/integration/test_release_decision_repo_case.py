"""Repos are one whatever their case, as on GitHub: a project listing ``Acme/Shop``, a
scan uploaded for ``ACME/shop``, a push from GitHub for ``Acme/Shop`` and a gate asking for
``acme/SHOP`` all meet, through the decision, HEAD, history, promotions, the badge and a
project-scoped key."""

from __future__ import annotations

from tests.conftest import StartService
from tests.integration.test_badge import badge, push_head, state
from tests.integration.test_release_decision_support import CLEAN, gate_stack, sha


async def test_repos_match_whatever_their_case(start_service: StartService) -> None:
    async with gate_stack(start_service) as g:
        project = await g.project("Acme/Shop", badge="public")
        commit = sha()
        scanned = await g.scan(project["slug"], "ACME/shop", commit, pkgs=CLEAN)
        assert scanned["status"] == "succeeded", scanned
        shipped = await g.decided("acme/SHOP", commit, decision="SHIP")
        assert shipped["repo"] == "acme/shop" and shipped["project_id"] == project["id"]
        assert shipped["revision"] >= 1

        await push_head(g, "Acme/Shop", commit)
        head = await g.decided("aCmE/sHoP", "HEAD", decision="SHIP")
        assert head["commit"] == commit
        assert state(await badge(g, "repo=ACME/Shop&commit=HEAD")) == "Assured"

        history = await g.call(
            "GET", f"/api/v1/releases/decision/history?repo=Acme/SHOP&commit={commit}"
        )
        assert history.status == 200 and history.body["items"], history.body
        promoted = await g.call(
            "POST",
            "/api/v1/releases/promote",
            json={"snapshot_id": scanned["id"], "target_status": "staging"},
        )
        assert promoted.status == 201, promoted.body
        listed = await g.call("GET", "/api/v1/releases/promotions?repo=ACME/SHOP")
        assert [p["id"] for p in listed.body["items"]] == [promoted.body["id"]]

        _, scoped = await g.s.api.new_key("VIEWER", project=project["slug"])
        mine = await g.decision("acme/shop", commit, token=scoped)
        assert mine.status == 200 and mine.body["decision"] == "SHIP", mine.body
