"""Git mirrors through the gateway, against a real signature-verifier, NATS and PostgreSQL:
configure, fetch, announce new commits, survive failing fetches, refuse bad URLs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pygit2

from services.registry import definition
from services.signature_verifier.mirrors.paths import mirror_path
from services.signature_verifier.mirrors.store import PROJECTION_TABLES
from shared.service import Runtime
from shared.settings import Settings
from tests.conftest import StartService, table_digest
from tests.integration.git_mirrors_support import (
    fetched,
    git_pushes,
    mirror_stack,
    new_repo_project,
    new_source,
)
from tests.integration.test_gateway_support import stream_count


async def test_a_mirror_fetches_and_announces_new_commits(start_service: StartService) -> None:
    source = new_source()
    first = [source.commit(f"c{i}") for i in range(3)]
    async with mirror_stack(start_service) as (api, verifier):
        await new_repo_project(api, "Acme/Widget")
        put = await api.call("PUT", "/api/v1/repos/acme/widget/git", json={"clone_url": source.url})
        assert put.status == 201, put.body
        assert put.body["repo"] == "Acme/Widget" and put.body["default_branch"] is None
        assert put.body["status"]["state"] in ("queued", "fetching", "ok")
        mirror = await fetched(api, "acme/widget")
        assert mirror["status"]["state"] == "ok", mirror
        assert mirror["status"]["head"] == first[-1]
        assert mirror["resolved_default_branch"] == "main"
        assert mirror["status"]["succeeded_at"] and mirror["status"]["last_error"] is None
        # The first fetch announces only the head.
        pushes = await git_pushes(verifier, "acme/widget")
        assert [(p.commit, p.head, p.branch) for p in pushes] == [(first[-1], True, "main")]

        # The same configuration again: 200, nothing published.
        before = await stream_count(api.runtime)
        again = await api.call(
            "PUT", "/api/v1/repos/Acme/Widget/git", json={"clone_url": source.url}
        )
        assert again.status == 200, again.body
        assert await stream_count(api.runtime) == before

        # New commits, then a sync: exactly those are announced, in push order.
        new = [source.commit(f"n{i}") for i in range(3)]
        sync = await api.call("POST", "/api/v1/repos/acme/widget/sync")
        assert sync.status == 202, sync.body
        assert sync.body["status"]["state"] in ("queued", "fetching", "ok")
        mirror = await fetched(api, "acme/widget", after=mirror["status"]["finished_at"])
        assert mirror["status"]["head"] == new[-1]
        pushes = (await git_pushes(verifier, "acme/widget"))[1:]
        assert [p.commit for p in pushes] == new
        assert [p.head for p in pushes] == [False, False, True]
        assert all(p.source == "git" and p.repo == "Acme/Widget" for p in pushes)

        # A force push: only the new head is announced.
        source.git("reset", "-q", "--hard", first[0])
        forced = source.commit("rewritten")
        await api.call("POST", "/api/v1/repos/acme/widget/sync")
        mirror = await fetched(api, "acme/widget", after=mirror["status"]["finished_at"])
        assert mirror["status"]["head"] == forced
        pushes = (await git_pushes(verifier, "acme/widget"))[4:]
        assert [(p.commit, p.head) for p in pushes] == [(forced, True)]

        # The mirror is bare, its HEAD the default branch, and no token in its config.
        repo = pygit2.Repository(str(mirror_path(verifier.settings, "acme/widget")))
        assert repo.is_bare and repo.head.target == pygit2.Oid(hex=forced)

        # DELETE drops the mirror and its directory; GET then answers 404.
        gone = await api.call("DELETE", "/api/v1/repos/acme/widget/git")
        assert gone.status == 204, gone.body
        assert not mirror_path(verifier.settings, "acme/widget").exists()
        missing = await api.call("GET", "/api/v1/repos/acme/widget/git")
        assert missing.status == 404 and missing.code == "mirror_not_found"


async def test_a_failing_fetch_keeps_the_old_mirror(start_service: StartService) -> None:
    source = new_source()
    head = source.commit("one")
    async with mirror_stack(start_service) as (api, verifier):
        await new_repo_project(api, "acme/gone")
        await api.call("PUT", "/api/v1/repos/acme/gone/git", json={"clone_url": source.url})
        mirror = await fetched(api, "acme/gone")
        assert mirror["status"]["head"] == head
        path = mirror_path(verifier.settings, "acme/gone")

        # The remote is corrupt: a new commit whose object is garbage.
        newer = source.commit("two")
        loose = source.path / ".git" / "objects" / newer[:2] / newer[2:]
        loose.chmod(0o644)
        loose.write_bytes(b"not a zlib stream")
        await api.call("POST", "/api/v1/repos/acme/gone/sync")
        mirror = await fetched(api, "acme/gone", after=mirror["status"]["finished_at"])
        assert mirror["status"]["state"] == "failed", mirror
        assert mirror["status"]["last_error"]
        assert mirror["status"]["head"] == head
        _assert_readable(path, head)

        # The remote disappears.
        shutil.rmtree(source.path)
        await api.call("POST", "/api/v1/repos/acme/gone/sync")
        mirror = await fetched(api, "acme/gone", after=mirror["status"]["finished_at"])
        assert mirror["status"]["state"] == "failed" and mirror["status"]["last_error"]
        assert mirror["status"]["succeeded_at"] is not None
        _assert_readable(path, head)
        assert len(await git_pushes(verifier, "acme/gone")) == 1


def _assert_readable(path: Path, head: str) -> None:
    repo = pygit2.Repository(str(path))
    assert str(repo.references["refs/heads/main"].target) == head
    commit = repo.get(head)
    assert isinstance(commit, pygit2.Commit) and commit.message == "one\n"


async def test_clone_urls_are_checked_before_anything_is_published(
    start_service: StartService,
) -> None:
    async with mirror_stack(
        start_service, git_allow_file_urls=False, git_credentials="gh=ghp_s3cr3t_t0ken"
    ) as (api, _verifier):
        await new_repo_project(api, "acme/app")
        before = await stream_count(api.runtime)
        path = "/api/v1/repos/acme/app/git"
        for url, reason in (
            ("file:///srv/git/app.git", "file_urls_disabled"),
            ("/srv/git/app.git", "file_urls_disabled"),
            ("http://127.0.0.1/x.git", "scheme"),
            ("https://127.0.0.1/x.git", "address"),
            ("https://2130706433/x.git", "address"),
            ("https://[::1]/x.git", "address"),
            ("https://169.254.169.254/latest.git", "address"),
            ("https://localhost/x.git", "address"),
            ("https://user:ghp_inline@github.com/a/b.git", "credentials_in_url"),
            ("ext::sh -c id", "malformed"),
            ("git://github.com/a/b.git", "scheme"),
        ):
            reply = await api.call("PUT", path, json={"clone_url": url})
            assert reply.status == 422, (url, reply.body)
            assert reply.code == "clone_url_refused" and reply.body["reason"] == reason, url
            assert "ghp_inline" not in str(reply.body)
        reply = await api.call(
            "PUT", path, json={"clone_url": "https://github.com/a/b.git", "credential": "nope"}
        )
        assert reply.status == 422 and reply.code == "credential_not_found", reply.body
        reply = await api.call(
            "PUT", path, json={"clone_url": "https://1.1.1.1/a.git", "default_branch": "a..b"}
        )
        assert reply.status == 422 and reply.code == "invalid_branch_name", reply.body
        assert await stream_count(api.runtime) == before

        # A named credential: the view shows its name, never its value.
        reply = await api.call(
            "PUT", path, json={"clone_url": "https://1.1.1.1/a/b.git", "credential": "gh"}
        )
        assert reply.status == 201, reply.body
        assert reply.body["credential"] == "gh" and "ghp_s3cr3t" not in str(reply.body)


async def test_internal_addresses_pass_inside_the_allowed_cidrs(
    start_service: StartService,
) -> None:
    async with mirror_stack(start_service, outbound_allow_cidrs="127.0.0.0/8") as (api, _):
        await new_repo_project(api, "acme/internal")
        reply = await api.call(
            "PUT",
            "/api/v1/repos/acme/internal/git",
            json={"clone_url": "https://127.0.0.1:9/x.git"},
        )
        assert reply.status == 201, reply.body
        # Nothing listens there: the fetch fails, and says so.
        mirror = await fetched(api, "acme/internal")
        assert mirror["status"]["state"] == "failed" and mirror["status"]["last_error"]


async def test_roles_repos_and_bad_input(start_service: StartService) -> None:
    source = new_source()
    source.commit("one")
    async with mirror_stack(start_service) as (api, _verifier):
        project = await new_repo_project(api, "acme/roles")
        other = await new_repo_project(api, "acme/other")
        path = "/api/v1/repos/acme/roles/git"
        body = {"clone_url": source.url}
        _, viewer = await api.new_key("VIEWER")
        _, operator = await api.new_key("OPERATOR")
        _, scoped = await api.new_key("OPERATOR", project=other["id"])
        _, own = await api.new_key("OPERATOR", project=project["id"])
        before = await stream_count(api.runtime)
        assert (await api.call("PUT", path, json=body, token=viewer)).status == 403
        assert (await api.call("GET", path, token=viewer)).status == 403
        assert (await api.call("POST", "/api/v1/repos/acme/roles/sync", token=viewer)).status == 403
        foreign = await api.call("PUT", path, json=body, token=scoped)
        assert foreign.status == 404 and foreign.code == "repo_not_found"
        unlisted = await api.call("PUT", "/api/v1/repos/acme/nobody/git", json=body)
        assert unlisted.status == 404 and unlisted.code == "repo_not_found"
        unconfigured = await api.call("GET", path, token=operator)
        assert unconfigured.status == 404 and unconfigured.code == "mirror_not_found"
        assert (await api.call("POST", "/api/v1/repos/acme/roles/sync")).code == "mirror_not_found"
        assert (await api.call("DELETE", path)).code == "mirror_not_found"
        for bad in (
            {"clone_url": source.url + "\x00"},
            {"clone_url": "https://github.com/" + "a" * 5000},
            {"clone_url": source.url, "default_branch": "\x00"},
            {"clone_url": source.url, "credential": "a" * 100},
            {"clone_url": source.url, "extra": 1},
            {"clone_url": 2**70},
            {
                "clone_url": [
                    [
                        [
                            [
                                [
                                    [
                                        [
                                            [
                                                [
                                                    [
                                                        [
                                                            [
                                                                [
                                                                    [
                                                                        [
                                                                            [
                                                                                [
                                                                                    [
                                                                                        [
                                                                                            [
                                                                                                [
                                                                                                    [
                                                                                                        [
                                                                                                            [
                                                                                                                [
                                                                                                                    [
                                                                                                                        [
                                                                                                                            [
                                                                                                                                [
                                                                                                                                    [
                                                                                                                                        [
                                                                                                                                            [
                                                                                                                                                [
                                                                                                                                                    [
                                                                                                                                                        [
                                                                                                                                                            [
                                                                                                                                                                [
                                                                                                                                                                    [
                                                                                                                                                                        [
                                                                                                                                                                            [
                                                                                                                                                                                [
                                                                                                                                                                                    [
                                                                                                                                                                                        [
                                                                                                                                                                                            [
                                                                                                                                                                                                [
                                                                                                                                                                                                    [
                                                                                                                                                                                                        [
                                                                                                                                                                                                            [
                                                                                                                                                                                                                [
                                                                                                                                                                                                                    [
                                                                                                                                                                                                                        []
                                                                                                                                                                                                                    ]
                                                                                                                                                                                                                ]
                                                                                                                                                                                                            ]
                                                                                                                                                                                                        ]
                                                                                                                                                                                                    ]
                                                                                                                                                                                                ]
                                                                                                                                                                                            ]
                                                                                                                                                                                        ]
                                                                                                                                                                                    ]
                                                                                                                                                                                ]
                                                                                                                                                                            ]
                                                                                                                                                                        ]
                                                                                                                                                                    ]
                                                                                                                                                                ]
                                                                                                                                                            ]
                                                                                                                                                        ]
                                                                                                                                                    ]
                                                                                                                                                ]
                                                                                                                                            ]
                                                                                                                                        ]
                                                                                                                                    ]
                                                                                                                                ]
                                                                                                                            ]
                                                                                                                        ]
                                                                                                                    ]
                                                                                                                ]
                                                                                                            ]
                                                                                                        ]
                                                                                                    ]
                                                                                                ]
                                                                                            ]
                                                                                        ]
                                                                                    ]
                                                                                ]
                                                                            ]
                                                                        ]
                                                                    ]
                                                                ]
                                                            ]
                                                        ]
                                                    ]
                                                ]
                                            ]
                                        ]
                                    ]
                                ]
                            ]
                        ]
                    ]
                ]
            },
            {"clone_url": "https://example.com/" + "x" * 2_000_000},
        ):
            reply = await api.call("PUT", path, json=bad)
            assert 400 <= reply.status < 500, (str(bad)[:80], reply.status)
        assert await stream_count(api.runtime) == before
        reply = await api.call("PUT", path, json=body, token=own)
        assert reply.status == 201 and reply.body["project_id"] == project["id"], reply.body
        assert (await api.call("GET", path, token=operator)).status == 200


async def test_replay_rebuilds_the_mirrors_tables(
    start_service: StartService, settings: Settings
) -> None:
    source = new_source()
    source.commit("one")
    async with mirror_stack(start_service) as (api, verifier):
        await new_repo_project(api, "acme/a", "acme/b", "acme/c")
        for name in ("a", "b", "c"):
            await api.call("PUT", f"/api/v1/repos/acme/{name}/git", json={"clone_url": source.url})
        await api.call(
            "PUT",
            "/api/v1/repos/acme/b/git",
            json={"clone_url": source.url, "default_branch": "main"},
        )
        await api.call("DELETE", "/api/v1/repos/acme/c/git")
        mirror = await fetched(api, "acme/a")
        await api.call("POST", "/api/v1/repos/acme/a/sync")
        await fetched(api, "acme/a", after=mirror["status"]["finished_at"])
        await verifier.stop()
    tables = ["mirrors"]
    assert "mirrors" in PROJECTION_TABLES
    before = await table_digest(settings.database_url, "signature_verifier", tables)
    runtime = Runtime(
        definition("signature-verifier"), settings.with_(service="signature-verifier")
    )
    await runtime.start(serve=False)
    try:
        assert await runtime.runners["mirrors"].replay() > 0
    finally:
        await runtime.stop()
    assert await table_digest(settings.database_url, "signature_verifier", tables) == before
