"""A replay of the decisions read model from sequence 0 rebuilds identical tables, finds
every release.decided job finished, and publishes nothing again."""

from __future__ import annotations

import datetime as dt

from contracts.events.commits import CommitPushed, CommitVerified
from services.registry import definition
from services.release_decision.decisions.store import PROJECTION_TABLES
from shared.service import Runtime
from shared.settings import Settings
from tests.conftest import StartService, table_digest, wait_until
from tests.integration.test_release_decision_support import CLEAN, decided_count, gate_stack, sha
from tests.integration.test_scan_support import fetch

# The lease columns, attempts and finished_seq record how the work went (the worker marks
# its job done before the event comes back), not what the stream says.
JOB_COLUMNS = "id, kind, payload, status, enqueued_seq"


async def test_replay_rebuilds_identical_tables(
    start_service: StartService, settings: Settings
) -> None:
    async with gate_stack(start_service) as g:
        project = await g.project("acme/replay")
        first, second = sha(), sha()
        scan = await g.scan(project["slug"], "acme/replay", first)
        blocked = await g.decided("acme/replay", first, decision="NO_SHIP")
        reply = await g.call(
            "PATCH",
            f"/api/v1/findings/{blocked['blockers'][0]['ref']}",
            json={"state": "fixed", "detail": "patched"},
            headers={"If-Match": '"v1"'},
        )
        assert reply.status == 200, reply.body
        await g.decided("acme/replay", first, decision="SHIP")
        await g.scan(project["slug"], "acme/replay", second, CLEAN)
        put = await g.call(
            "PUT", "/api/v1/releases/policy", json={"block_on_severity": ["CRITICAL", "MEDIUM"]}
        )
        assert put.status == 200, put.body
        promoted = await g.call(
            "POST",
            "/api/v1/releases/promote",
            json={"snapshot_id": scan["id"], "target_status": "staging"},
        )
        assert promoted.status == 409  # MEDIUM sqlparse blocks now
        now = dt.datetime.now(dt.UTC)
        # Verified first: once HEAD resolves, the signature is applied too (stream order).
        for payload in (
            CommitVerified(
                repo="acme/replay", commit=second, verified=True, reason="valid", verified_at=now
            ),
            CommitPushed(
                repo="acme/replay",
                commit=second,
                branch="main",
                source="github",
                head=True,
                pushed_at=now,
            ),
        ):
            await g.decisions.bus.publish(payload, aggregate="commit:acme/replay", actor="system")
        head = await g.decided("acme/replay", "HEAD", decision="SHIP")
        assert head["commit"] == second and head["evidence"]["signature_verified"] is True
        history = await g.call(
            "GET", "/api/v1/releases/decision/history?repo=acme/replay&commit=HEAD"
        )
        assert history.status == 200, history.body
        assert {i["commit"] for i in history.body["items"]} == {second}

        async def all_announced() -> bool:
            rows = await fetch(
                g.decisions,
                "SELECT count(*) AS n, count(*) FILTER (WHERE status = 'done') AS done "
                "FROM release_decision.decision_jobs",
            )
            return rows[0]["n"] == rows[0]["done"] == await decided_count(g.decisions)

        await wait_until(all_announced, timeout=20)
        announced = await decided_count(g.decisions)
        await g.decisions.stop()

        tables = [t for t in PROJECTION_TABLES if t != "decision_jobs"]
        before = await table_digest(settings.database_url, "release_decision", tables)
        jobs_before = await fetch(
            g.s.scanner, f"SELECT {JOB_COLUMNS} FROM release_decision.decision_jobs ORDER BY id"
        )
        replayer = Runtime(
            definition("release-decision"), settings.with_(service="release-decision")
        )
        await replayer.start(serve=False)
        try:
            applied = await replayer.runners["decisions"].replay()
        finally:
            await replayer.stop()
        assert applied > 0
        assert await table_digest(settings.database_url, "release_decision", tables) == before
        jobs_after = await fetch(
            g.s.scanner, f"SELECT {JOB_COLUMNS} FROM release_decision.decision_jobs ORDER BY id"
        )
        assert [dict(r) for r in jobs_after] == [dict(r) for r in jobs_before]
        assert {r["status"] for r in jobs_after} == {"done"}

        # Started again: nothing is pending, nothing is published again.
        again = await start_service("release-decision")
        view = await g.decision("acme/replay", first)
        assert view.status == 200 and view.body["decision"] == "NO_SHIP"
        assert (
            await again.pool.fetchval(
                "SELECT count(*) FROM release_decision.decision_jobs WHERE status <> 'done'"
            )
            == 0
        )
        assert await decided_count(again) == announced
