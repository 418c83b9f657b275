"""Retention over HTTP against a real scanner: policies (CRUD, 409 for a name in use, 422,
412, roles, project scope, the admin mount), a dry run and the real run it announces (the
same deletions; promoted, recently downloaded and quarantined artifacts survive; progress
visible while the run waits for the repository's lock; ``retention.deleted`` then
``artifact.deleted`` per artifact), a second run deleting nothing more, the periodic run,
the git routes under ``/api/v1/repos/{owner}/{repo}/…`` unshadowed, and a replay giving
identical policy and registry tables."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg
import msgspec

from contracts.rpc.registry import Artifact
from services.registry import definition
from services.scanner.registry.projection import NAME as REGISTRY
from services.scanner.registry.store import PROJECTION_TABLES as REGISTRY_TABLES
from services.scanner.retention.projection import NAME as RETENTION
from services.scanner.retention.store import PROJECTION_TABLES as RETENTION_TABLES
from shared.db import advisory_key
from shared.jobs import projection_caught_up
from shared.service import Runtime
from shared.settings import Settings
from tests.conftest import StartService, table_digest, wait_until
from tests.integration.registry_meta_support import Registry, registry
from tests.integration.retention_support import (
    promote,
    pulls_applied,
    record_download,
    upload_at,
)
from tests.integration.test_license_support import events

NOW = dt.datetime.now(dt.UTC)
DAY = dt.timedelta(days=1)
NIGHTLY = {
    "name": "Nightly",
    "pattern": "demo-*",
    "keep_last": 2,
    "max_age_days": 30,
    "keep_pulled_days": 30,
}


async def run_until(r: Registry, location: str, done: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def reached() -> bool:
        reply = await r.http("GET", location)
        assert reply.status == 200, reply.body
        found.update(reply.body)
        return bool(done(reply.body))

    await wait_until(reached)
    return found


async def test_policies_dry_run_real_run_guards_progress_and_replay(
    start_service: StartService, settings: Settings
) -> None:
    async with registry(start_service) as r:
        acme = await r.api.new_project("acme")
        other = await r.api.new_project("other")
        repo = await r.new_repo("acme", "pypi")
        release = await r.new_repo("acme", "release")
        base = f"/api/v1/repos/{repo['id']}/retention"

        # ---- artifacts: demo 1.0..1.5 from 100 days to 1 day old, and some others --------
        ids: dict[str, str] = {}
        for version, days in (("1.0", 100), ("1.1", 90), ("1.2", 80), ("1.3", 70), ("1.4", 5)):
            ids[version] = await upload_at(
                r,
                repo,
                f"demo-{version}-py3-none-any.whl",
                name="demo",
                version=version,
                at=NOW - days * DAY,
            )
        ids["1.5"] = (
            await r.register(repo["id"], "demo-1.5-py3-none-any.whl", name="demo", version="1.5")
        ).id
        ids["held"] = await upload_at(
            r, repo, "demo-0.9-py3-none-any.whl", name="demo", version="0.9",
            at=NOW - 300 * DAY, quarantined=True,
        )  # fmt: skip
        ids["other"] = await upload_at(
            r, repo, "other-2.0-py3-none-any.whl", name="other", version="2.0", at=NOW - 200 * DAY
        )
        # 1.0 was promoted to release; 1.1 was downloaded last week, 1.2 two months ago.
        copy = await promote(r, ids["1.0"], from_repo=repo["id"], to_repo=release["id"])
        for version, days in (("1.1", 7), ("1.2", 60)):
            artifact = await r.http("GET", f"/api/v1/artifacts/{ids[version]}")
            pulled = await record_download(
                r, _artifact(artifact.body), principal="apikey:ci", at=NOW - days * DAY
            )
        await pulls_applied(r, pulled)
        await r.settled()  # the scans on upload publish on their own

        # ---- policies: create, 409 for a name in use, 422, roles, scope -----------------
        _, viewer = await r.api.new_key("VIEWER")
        _, operator = await r.api.new_key("OPERATOR")
        _, foreign = await r.api.new_key("OPERATOR", project=other["id"])
        _, own = await r.api.new_key("VIEWER", project=acme["id"])
        before = await r.counts()
        assert (await r.http("POST", base, json=NIGHTLY, token=viewer)).status == 403
        assert (await r.http("POST", base, json=NIGHTLY, token=foreign)).status == 404
        invalid = await r.http("POST", base, json={"name": "none"})
        assert invalid.status == 422 and invalid.code == "invalid_retention_policy"
        assert [e["field"] for e in invalid.body["errors"]] == ["$.keep_last", "$.max_age_days"]
        bad_pattern = await r.http(
            "POST", base, json={"name": "x", "keep_last": 1, "pattern": "/a"}
        )
        assert [e["field"] for e in bad_pattern.body["errors"]] == ["$.pattern"]
        unknown = await r.http("POST", base, json={**NIGHTLY, "keep_everything": True})
        assert unknown.status == 422
        assert await r.counts() == before

        created = await r.http("POST", base, json=NIGHTLY, token=operator)
        assert created.status == 201, created.body
        policy = created.body
        assert policy["id"].startswith("ret_") and policy["repo_id"] == repo["id"]
        assert created.headers["Location"] == f"{base}/{policy['id']}"
        assert (policy["project_id"], policy["keep_pulled_days"], policy["enabled"]) == (
            acme["id"],
            30,
            True,
        )
        assert policy["created_by"].startswith("apikey:") and policy["deleted_count"] == 0
        duplicate = await r.http("POST", base, json={**NIGHTLY, "name": "nightly"})
        assert duplicate.status == 409 and duplicate.code == "retention_policy_name_in_use"
        assert "'Nightly'" in duplicate.body["detail"] and policy["id"] in duplicate.body["detail"]
        assert duplicate.body["conflicting_policy_id"] == policy["id"]
        # Another repository may use the name.
        assert (
            await r.http("POST", f"/api/v1/repos/{release['id']}/retention", json=NIGHTLY)
        ).status == 201
        sets = (await r.counts("retention.policy-set")).get("retention.policy-set", 0)
        weekly, retried = [
            await r.http(
                "POST",
                base,
                json={"name": "weekly", "max_age_days": 7},
                headers={"Idempotency-Key": "weekly-1"},
            )
            for _ in range(2)
        ]
        assert weekly.status == retried.status == 201 and weekly.body == retried.body
        assert await r.counts("retention.policy-set") == {"retention.policy-set": sets + 1}
        renamed = await r.http(
            "PUT", f"{base}/{weekly.body['id']}", json={"name": "NIGHTLY", "max_age_days": 7}
        )
        assert renamed.status == 409 and renamed.body["conflicting_policy_id"] == policy["id"]
        stale = await r.http(
            "PUT",
            f"{base}/{weekly.body['id']}",
            json={"name": "weekly", "max_age_days": 8},
            headers={"If-Match": '"v1"'},
        )
        assert stale.status == 412
        changed = await r.http(
            "PUT",
            f"{base}/{weekly.body['id']}",
            json={"name": "weekly", "max_age_days": 8, "enabled": False},
            headers={"If-Match": weekly.headers["ETag"]},
        )
        assert changed.status == 200 and changed.body["max_age_days"] == 8
        assert changed.headers["ETag"] != weekly.headers["ETag"]
        listing = await r.http("GET", base, token=own)
        assert [p["name"] for p in listing.body["items"]] == ["Nightly", "weekly"]
        assert (await r.http("GET", base, token=foreign)).status == 404
        one = await r.http("GET", f"{base}/{policy['id']}", token=viewer)
        assert one.status == 200 and one.headers["ETag"] == created.headers["ETag"]
        missing = await r.http("GET", f"{base}/ret_{'0' * 32}")
        assert missing.status == 404 and missing.code == "retention_policy_not_found"
        admin = await r.http("GET", "/api/admin/retention?project_id=acme")
        assert [p["name"] for p in admin.body["items"]] == ["Nightly", "Nightly", "weekly"]
        assert (await r.http("GET", "/api/admin/retention", token=viewer)).status == 403
        disabled = await r.http("POST", f"{base}/{weekly.body['id']}/run?dry_run=false")
        assert disabled.status == 409 and disabled.code == "retention_policy_disabled"
        assert (await r.http("DELETE", f"{base}/{weekly.body['id']}")).status == 204
        assert (await r.http("GET", f"{base}/{weekly.body['id']}")).status == 404

        # ---- the dry run: what would go, and what the guards keep -----------------------
        counts = await r.counts()
        assert (await r.http("POST", f"{base}/{policy['id']}/run", token=viewer)).status == 403
        dry = await r.http("POST", f"{base}/{policy['id']}/run?dry_run=true")
        assert dry.status == 200, dry.body
        plan = dry.body
        assert (plan["dry_run"], plan["status"], plan["id"]) == (True, "planned", None)
        assert [i["artifact_id"] for i in plan["items"]] == [ids["1.3"], ids["1.2"]]
        assert plan["total"] == 2 and plan["bytes_freed"] == 2000
        assert "not among the newest 2 of demo (#3)" in plan["items"][0]["why"]
        assert [(p["artifact_id"], p["guard"]) for p in plan["protected"]] == [
            (ids["1.1"], "pulled_recently"),
            (ids["1.0"], "promoted"),
        ]
        assert await r.counts() == counts  # a dry run publishes nothing

        # ---- the real run: progress while it waits for the repository's lock ------------
        lock = await asyncpg.connect(settings.database_url)
        try:
            await lock.execute(
                "SELECT pg_advisory_lock($1)", advisory_key(f"registry-repo:{repo['id']}")
            )
            started = await r.http(
                "POST",
                f"{base}/{policy['id']}/run?dry_run=false",
                headers={"Idempotency-Key": "run-1"},
            )
            assert started.status == 202, started.body
            run = started.body
            location = started.headers["Location"]
            assert location == f"{base}/runs/{run['id']}"
            assert (run["dry_run"], run["status"], run["trigger"]) == (False, "queued", "manual")
            again = await r.http(
                "POST",
                f"{base}/{policy['id']}/run?dry_run=false",
                headers={"Idempotency-Key": "run-1"},
            )
            assert again.body["id"] == run["id"]
            waiting = await run_until(r, location, lambda b: b["status"] == "running")
            assert (waiting["total"], waiting["deleted"], waiting["skipped"]) == (2, 0, 0)
            assert [i["artifact_id"] for i in waiting["items"]] == [ids["1.3"], ids["1.2"]]
        finally:
            await lock.close()
        done = await run_until(r, location, lambda b: b["status"] == "done")
        assert (done["total"], done["deleted"], done["skipped"], done["bytes_freed"]) == (
            2,
            2,
            0,
            2000,
        )
        assert done["started_at"] and done["finished_at"] and done["error"] is None
        assert [p["artifact_id"] for p in done["protected"]] == [ids["1.1"], ids["1.0"]]

        # retention.deleted then artifact.deleted (reason retention), per artifact.
        gone = [ids["1.3"], ids["1.2"]]
        retention_events = await events(r.scanner, "retention.deleted")
        assert [e.artifact_id for e in retention_events] == gone
        assert {e.policy_id for e in retention_events} == {policy["id"]}
        deleted_events = await events(r.scanner, "artifact.deleted")
        assert [(e.id, e.reason) for e in deleted_events] == [(i, "retention") for i in gone]
        assert "retention policy 'Nightly'" in deleted_events[0].detail
        order = await _stream_order(r, gone)
        assert order == ["retention.deleted", "artifact.deleted"] * 2
        for artifact_id in gone:
            assert (await r.http("GET", f"/api/v1/artifacts/{artifact_id}")).status == 404
        for key in ("1.0", "1.1", "1.4", "1.5", "held", "other"):
            assert (await r.http("GET", f"/api/v1/artifacts/{ids[key]}")).status == 200, key
        assert (await r.http("GET", f"/api/v1/artifacts/{copy}")).status == 200
        shown = await r.http("GET", f"{base}/{policy['id']}")
        assert shown.body["deleted_count"] == 2

        # ---- running again deletes nothing more ------------------------------------------
        second = await r.http("POST", f"{base}/{policy['id']}/run?dry_run=false")
        assert second.status == 202
        second_done = await run_until(
            r, second.headers["Location"], lambda b: b["status"] == "done"
        )
        assert (second_done["total"], second_done["deleted"]) == (0, 0)
        assert (await r.http("POST", f"{base}/{policy['id']}/run")).body["items"] == []
        assert len(await events(r.scanner, "artifact.deleted")) == 2
        runs = await r.http("GET", f"{base}/runs?limit=1")
        assert [x["id"] for x in runs.body["items"]] == [second.body["id"]]
        older = await r.http("GET", f"{base}/runs?cursor={runs.body['next_cursor']}")
        assert [x["id"] for x in older.body["items"]] == [run["id"]]
        # …/retention/runs is never taken for a policy id.
        options = await r.http("OPTIONS", f"{base}/runs")
        assert options.status == 405 and options.headers["Allow"] == "GET"
        unknown_run = await r.http("GET", f"{base}/runs/rrun_{'0' * 32}")
        assert unknown_run.status == 404 and unknown_run.code == "retention_run_not_found"

        # ---- the git routes under /api/v1/repos/{owner}/{repo}/… are not shadowed ------
        await start_service("signature-verifier")
        await r.api.new_project("gitty", repos=[f"{repo['id']}/retention"])
        git = await r.http("GET", f"/api/v1/repos/{repo['id']}/retention/git")
        assert git.status == 404 and git.code == "mirror_not_found", git.body
        sync = await r.http("POST", f"/api/v1/repos/{repo['id']}/retention/sync")
        assert sync.code == "mirror_not_found"
        unlisted = await r.http("GET", "/api/v1/repos/acme/retention/commits")
        assert unlisted.status == 404 and unlisted.code == "repo_not_found"

        # ---- the periodic run (a replica with GATEHOUSE_RETENTION_INTERVAL_SECONDS=1) ---
        await upload_at(
            r, repo, "demo-1.6-py3-none-any.whl", name="demo", version="1.6", at=NOW - 50 * DAY
        )
        await r.http("PUT", f"{base}/{policy['id']}", json={**NIGHTLY, "keep_last": 1})
        replica = await start_service("scanner", retention_interval_seconds=1)

        def periodic_run(page: dict[str, Any]) -> bool:
            return any(
                (x["trigger"], x["status"], x["deleted"]) == ("interval", "done", 1)
                for x in page["items"]
            )

        # 1.5 is the newest, 1.4 is young, 1.1 and 1.0 are guarded: 1.6 (50 days) goes.
        await run_until(r, f"{base}/runs", periodic_run)
        assert (await r.http("GET", f"/api/v1/artifacts/{ids['1.4']}")).status == 200

        scanner = r.scanner

        async def caught_up() -> bool:
            return all(
                [
                    await projection_caught_up(scanner.bus, scanner.runners[name])
                    for name in (REGISTRY, RETENTION)
                ]
            )

        await r.settled()
        await wait_until(caught_up)
        await replica.stop()
        await r.scanner.stop()  # replay takes the projections' leader locks
    # ---- replay from sequence 0 gives identical tables --------------------------------------
    # (the registry jobs' lease columns record how the work went, not the stream)
    tables = [*RETENTION_TABLES, *(t for t in REGISTRY_TABLES if t != "registry_jobs")]
    live = await table_digest(settings.database_url, "scanner", tables)
    runtime = Runtime(definition("scanner"), settings.with_(service="scanner"))
    await runtime.start(serve=False)
    try:
        for name in (REGISTRY, RETENTION):
            assert await runtime.runners[name].replay() > 0
    finally:
        await runtime.stop()
    assert await table_digest(settings.database_url, "scanner", tables) == live


def _artifact(body: dict[str, Any]) -> Artifact:
    return msgspec.convert(body, Artifact)


async def _stream_order(r: Registry, artifact_ids: list[str]) -> list[str]:
    """The types of the deletion events of ``artifact_ids``, in stream order."""
    found: list[tuple[int, str]] = []
    for subject in ("retention.deleted", "artifact.deleted"):
        sub = await r.scanner.bus.js.subscribe(
            subject, ordered_consumer=True, stream=r.scanner.bus.stream
        )
        try:
            for _ in range(len(artifact_ids)):
                msg = await sub.next_msg(timeout=5)
                found.append((int(msg.metadata.sequence.stream), subject))
        finally:
            await sub.unsubscribe()
    return [subject for _, subject in sorted(found)]
