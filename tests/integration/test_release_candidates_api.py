"""Release candidates over HTTP, as an Aviator releases API client sees them: cutting
candidates into releases, listings, and every error with Aviator's ``error`` message."""

from __future__ import annotations

import asyncio

from contracts.events.deployments import ReleaseCandidateCreated, ReleaseCreated
from tests.conftest import StartService
from tests.integration.release_candidates_support import (
    SHA_A,
    SHA_B,
    SHA_C,
    candidates_stack,
    events_of,
    new_project,
    problem_ok,
)
from tests.integration.test_gateway_support import stream_count


async def test_candidates_join_their_release(start_service: StartService) -> None:
    async with candidates_stack(start_service) as api:
        slug = await new_project(api, "acme/api", "acme/web")
        base = f"/api/releases/{slug}/releases"
        first = await api.call(
            "POST", f"{base}/v1.4.0-rc1", json={"repo": "acme/api", "commit": SHA_A}
        )
        assert first.status == 201, first.body
        assert first.headers["Location"] == f"{base}/v1.4.0"
        rc1 = first.body
        assert (rc1["version"], rc1["release_version"], rc1["rc_number"]) == (
            "v1.4.0-rc1",
            "v1.4.0",
            1,
        )
        assert (rc1["repo"], rc1["commit"], rc1["trigger_build_workflow"]) == (
            "acme/api",
            SHA_A,
            False,
        )
        # Upper-case hex and the repo's other spelling are the same commit and repo.
        second = await api.call(
            "POST",
            f"{base}/v1.4.0-rc2",
            json={"repo": "ACME/api", "commit": SHA_B.upper(), "trigger_build_workflow": True},
        )
        assert second.status == 201, second.body
        rc2 = second.body
        assert rc2["release_id"] == rc1["release_id"] and rc2["rc_number"] == 2
        assert (rc2["repo"], rc2["commit"], rc2["trigger_build_workflow"]) == (
            "acme/api",
            SHA_B,
            True,
        )
        # The same candidate again is a no-op; another commit under its version is refused.
        again = await api.call(
            "POST", f"{base}/v1.4.0-rc2", json={"repo": "acme/api", "commit": SHA_B}
        )
        assert again.status == 200 and again.body == rc2
        clash = await api.call(
            "POST", f"{base}/v1.4.0-rc2", json={"repo": "acme/api", "commit": SHA_C}
        )
        problem_ok(clash, 409, "release_candidate_exists", "Release candidate already exists")
        # rc02 is candidate 2 as well: one number, one candidate, whatever the spelling.
        for commit in (SHA_B, SHA_C):
            respelled = await api.call(
                "POST", f"{base}/v1.4.0-rc02", json={"repo": "acme/api", "commit": commit}
            )
            problem_ok(
                respelled, 409, "release_candidate_exists", "Release candidate already exists"
            )
            assert "'v1.4.0-rc2'" in respelled.body["detail"]
        other = await api.call(
            "POST", f"{base}/v2.0.0-rc1", json={"repo": "acme/web", "commit": SHA_C}
        )
        assert other.status == 201 and other.body["release_id"] != rc1["release_id"]

        listing = await api.call("GET", base)
        assert listing.status == 200
        assert [(r["version"], r["candidate_count"]) for r in listing.body["items"]] == [
            ("v2.0.0", 1),
            ("v1.4.0", 2),
        ]
        assert listing.body["items"][1]["latest_candidate"]["version"] == "v1.4.0-rc2"
        page = await api.call("GET", f"{base}?limit=1")
        assert [r["version"] for r in page.body["items"]] == ["v2.0.0"]
        rest = await api.call("GET", f"{base}?limit=1&cursor={page.body['next_cursor']}")
        assert [r["version"] for r in rest.body["items"]] == ["v1.4.0"]
        assert rest.body["next_cursor"] is None

        detail = await api.call("GET", f"{base}/v1.4.0")
        assert detail.status == 200
        assert [c["version"] for c in detail.body["candidates"]] == ["v1.4.0-rc1", "v1.4.0-rc2"]
        by_candidate = await api.call("GET", f"{base}/v1.4.0-rc1")
        assert by_candidate.status == 200 and by_candidate.body["id"] == rc1["release_id"]
        for missing in ("v9.9.9", "v1.4.0-rc7"):
            problem_ok(
                await api.call("GET", f"{base}/{missing}"),
                404,
                "release_not_found",
                "Release not found",
            )

        created = await events_of(api.runtime, "release.>")
        kinds = [
            type(e.payload)
            for e in created
            if isinstance(e.payload, (ReleaseCreated, ReleaseCandidateCreated))
        ]
        assert kinds == [
            ReleaseCreated,
            ReleaseCandidateCreated,
            ReleaseCandidateCreated,
            ReleaseCreated,
            ReleaseCandidateCreated,
        ]
        first_event = created[0]
        assert first_event.payload.version == "v1.4.0" and first_event.envelope.actor.startswith(
            "apikey:"
        )


async def test_bad_candidates_are_refused_as_aviator_does(start_service: StartService) -> None:
    async with candidates_stack(start_service) as api:
        # A project may list a repo that is no owner/name: no candidate can name it.
        slug = await new_project(api, "acme/api", "gitlab.example.com/group/sub/app")
        base = f"/api/releases/{slug}/releases"
        before = await stream_count(api.runtime)
        for version in (
            "v1.4.0",
            "v1.4.0-rc",
            "v1.4.0-RC1",
            "v1.4.0-beta1",
            "-rc1",
            "v1.4.0-rc1x",
            "x" * 300 + "-rc1",
        ):
            reply = await api.call(
                "POST", f"{base}/{version}", json={"repo": "acme/api", "commit": SHA_A}
            )
            problem_ok(
                reply, 400, "invalid_release_candidate_version", "Invalid release candidate version"
            )
        for commit in ("", "xyz", "abc1234", "a" * 39, "a" * 41, "g" * 40, "a" * 63):
            reply = await api.call(
                "POST", f"{base}/v1.0.0-rc1", json={"repo": "acme/api", "commit": commit}
            )
            problem_ok(reply, 400, "invalid_commit_hash", "Invalid commit hash")
        for repo in ("acme/other", "acme", "", "someone/api", "gitlab.example.com/group/sub/app"):
            reply = await api.call(
                "POST", f"{base}/v1.0.0-rc1", json={"repo": repo, "commit": SHA_A}
            )
            problem_ok(reply, 404, "repository_not_found", "GitHub repository not found")
        # Schema errors stay our 422s; an unknown project our 404.
        for body in (
            {"commit": SHA_A},
            {"repo": "acme/api", "commit": SHA_A, "extra": 1},
            {"repo": 1, "commit": SHA_A},
        ):
            reply = await api.call("POST", f"{base}/v1.0.0-rc1", json=body)
            assert reply.status == 422 and reply.code == "validation_failed", reply.body
        reply = await api.call(
            "POST",
            "/api/releases/nope/releases/v1.0.0-rc1",
            json={"repo": "acme/api", "commit": SHA_A},
        )
        assert reply.status == 404 and reply.code == "not_found"
        assert await stream_count(api.runtime) == before, "nothing was written"
        assert (await api.call("GET", base)).body["items"] == []

        # A 64-digit SHA-256 commit is fine; an archived project takes no new candidate.
        ok = await api.call(
            "POST", f"{base}/v1.0.0-rc1", json={"repo": "acme/api", "commit": "d" * 64}
        )
        assert ok.status == 201, ok.body
        assert (await api.call("DELETE", f"/api/v1/projects/{slug}")).status in (200, 204)
        archived = await api.call(
            "POST", f"{base}/v1.0.0-rc2", json={"repo": "acme/api", "commit": SHA_A}
        )
        problem_ok(archived, 409, "project_archived", "The project is archived")


async def test_concurrent_cuts_of_one_candidate_create_it_once(start_service: StartService) -> None:
    async with candidates_stack(start_service) as api:
        slug = await new_project(api, "acme/api")
        replies = await asyncio.gather(
            *(
                api.call(
                    "POST",
                    f"/api/releases/{slug}/releases/v3.0.0-rc1",
                    json={"repo": "acme/api", "commit": SHA_A},
                )
                for _ in range(20)
            )
        )
        assert sorted(r.status for r in replies) == [200] * 19 + [201]
        assert len({r.body["id"] for r in replies}) == 1
        created = await events_of(api.runtime, "release.>")
        assert [e.type for e in created] == ["release.created", "release.candidate-created"]


async def test_roles_and_project_scope(start_service: StartService) -> None:
    async with candidates_stack(start_service) as api:
        slug = await new_project(api, "acme/api")
        other = await new_project(api, "acme/api")
        _, viewer = await api.new_key("VIEWER")
        _, operator = await api.new_key("OPERATOR", project=slug)
        body = {"repo": "acme/api", "commit": SHA_A}
        refused = await api.call(
            "POST", f"/api/releases/{slug}/releases/v1.0.0-rc1", json=body, token=viewer
        )
        assert refused.status == 403
        ok = await api.call(
            "POST", f"/api/releases/{slug}/releases/v1.0.0-rc1", json=body, token=operator
        )
        assert ok.status == 201
        assert (await api.call("GET", f"/api/releases/{slug}/releases", token=viewer)).status == 200
        # A scoped key sees another project as missing.
        hidden = await api.call("GET", f"/api/releases/{other}/releases", token=operator)
        assert hidden.status == 404
        env = await api.call(
            "PUT", f"/api/releases/{slug}/environments/prod", json={}, token=operator
        )
        assert env.status == 403, "environments are configured by ADMIN and POLICY_AUTHOR"
