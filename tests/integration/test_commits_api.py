"""The commits API end to end: signature-verifier reading a bare mirror built with the git CLI,
through the gateway over HTTP, held against ``git log`` and ``git show`` on the same mirror."""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pygit2
import pytest

from services.signature_verifier.mirrors.paths import mirror_path
from shared.service import Runtime
from tests.conftest import StartService
from tests.integration.test_commits_support import (
    add_mirror,
    add_verification,
    build_history,
    git_bytes,
    git_lines,
    init_bare,
    mirror_into,
)
from tests.integration.test_gateway_support import Api, Reply, gateway_api, stream_count

REPO = "Acme/Widgets"


@pytest.fixture(scope="module")
def history() -> Iterator[Path]:
    work = Path(tempfile.mkdtemp(prefix="gatehouse-commits-")) / "work"
    build_history(work)
    yield work


@dataclass
class Stack:
    api: Api
    verifier: Runtime
    mirror: Path

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.api.call("GET", path, **kw)

    async def commits(self, query: str = "", repo: str = REPO, **kw: Any) -> Reply:
        return await self.get(f"/api/v1/repos/{repo}/commits?{query}", **kw)

    async def shas(self, query: str = "", repo: str = REPO) -> list[str]:
        reply = await self.commits(query + "&per_page=100", repo=repo)
        assert reply.status == 200, reply.body
        return [item["sha"] for item in reply.body]


@asynccontextmanager
async def stack(
    start_service: StartService, history: Path, *, mirrored: bool = True
) -> AsyncIterator[Stack]:
    data_dir = tempfile.mkdtemp(prefix="gatehouse-sv-")
    verifier = await start_service("signature-verifier", data_dir=data_dir)
    where = mirror_path(verifier.settings, REPO)
    # These tests change the owner's mirror and rows behind the events' back: the gateway's
    # commits cache (test_commits_cache.py) would rightly keep answering what it was told.
    async with gateway_api(start_service, commits_cache_size=0) as api:
        await api.new_project(repos=[REPO.lower()])
        if mirrored:
            mirror_into(history, where)
            await add_mirror(verifier.settings, REPO)
        yield Stack(api=api, verifier=verifier, mirror=where)


def git_log(mirror: Path, *args: str) -> list[str]:
    return git_lines(mirror, "log", "--format=%H", *args)


# ---- listing ---------------------------------------------------------------------------------
async def test_listing_agrees_with_git_log(start_service: StartService, history: Path) -> None:
    async with stack(start_service, history) as s:
        for path in (
            "src/a.py",
            "src/b.py",
            "src",
            "src/",
            "docs",
            "docs/guide.md",
            "docs/copy.md",
            "script.sh",
            "bin/data.bin",
            "README.md",
            "missing/file",
        ):
            expected = git_log(s.mirror, "--", path.rstrip("/"))
            assert await s.shas(f"path={quote(path)}") == expected, path
        everything = git_log(s.mirror)
        assert await s.shas() == everything and len(everything) == 14
        # The -s ours merge kept main's guide: the side branch's rewrite is pruned.
        side = git_lines(s.mirror, "rev-parse", "side")[0]
        assert side in everything and side not in await s.shas("path=docs/guide.md")
        for sha in ("feature", "side", "v1.0", "refs/heads/side", everything[3][:9], "HEAD"):
            assert await s.shas(f"sha={sha}") == git_log(s.mirror, sha), sha
        # Repos compare in any case.
        assert await s.shas(repo=REPO.upper()) == everything


async def test_entries_have_githubs_shape(start_service: StartService, history: Path) -> None:
    async with stack(start_service, history) as s:
        reply = await s.commits("per_page=100")
        assert reply.status == 200 and "Link" not in reply.headers
        by_subject = {item["subject"]: item for item in reply.body}
        first = by_subject["Initial import"]
        assert first["body"] == "The first commit."
        assert first["short_sha"] == first["sha"][:7]
        assert first["author"] == {
            "name": "Ada Lovelace",
            "email": "ada@example.org",
            "date": "2024-01-01T13:00:00Z",
        }
        grown = by_subject["Grow a.py"]
        # Recorded at +05:30, answered in UTC as GitHub does.
        assert grown["author"]["date"] == "2024-01-01T14:00:00Z"
        latin = by_subject["Café au lait"]  # ISO-8859-1, re-encoded as git log does
        assert latin["body"] == "Latin-1 body é"
        bad = next(i for i in reply.body if i["subject"].startswith("Bad bytes"))
        assert bad["subject"] == "Bad bytes \ufffd\ufffd here" and bad["body"] == "body"
        assert set(first["verification"]) == {
            "verified",
            "reason",
            "signature",
            "payload",
            "verified_at",
        }
        assert first["verification"] == {
            "verified": False,
            "reason": "unsigned",
            "signature": None,
            "payload": None,
            "verified_at": None,
        }


async def test_filters_and_pagination(start_service: StartService, history: Path) -> None:
    async with stack(start_service, history) as s:
        assert await s.shas("author=GRACE") == git_log(s.mirror, "-i", "--author=grace")
        assert await s.shas("author=navy.EXAMPLE") == git_log(s.mirror, "-i", "--author=navy")
        assert await s.shas("author=nobody") == []
        since, until = "2024-01-01T16:00:00Z", "2024-01-01T21:30:00+01:00"
        expected = git_log(s.mirror, f"--since={since}", f"--until={until}")
        got = await s.shas(f"since={quote(since)}&until={quote(until)}")
        assert got == expected and 0 < len(got) < 14

        everything = git_log(s.mirror, "--", "src")
        pages: list[str] = []
        page = 1
        while True:
            reply = await s.commits(f"path=src&per_page=1&page={page}")
            assert reply.status == 200, reply.body
            pages.extend(item["sha"] for item in reply.body)
            link = reply.headers.get("Link", "")
            assert 'rel="last"' not in link and 'rel="first"' not in link
            assert ('rel="prev"' in link) == (page > 1)
            if 'rel="next"' not in link:
                break
            nxt = link.split('>; rel="next"')[0].lstrip("<")
            assert nxt.startswith(s.api.base + "/api/v1/repos/")
            assert "path=src" in nxt and "per_page=1" in nxt and f"page={page + 1}" in nxt
            page += 1
        assert pages == everything and page == len(everything)
        past = await s.commits("per_page=30&page=9")
        assert past.status == 200 and past.body == []
        assert past.headers["Link"].endswith('rel="prev"') and "page=8" in past.headers["Link"]


# ---- one commit ------------------------------------------------------------------------------
def git_files(mirror: Path, sha: str) -> list[tuple[Any, ...]]:
    """(status, path, old_path, additions, deletions, binary) as git reports them (against the
    first parent, renames and copies detected)."""
    parents = git_lines(mirror, "rev-list", "--parents", "-n1", sha)[0].split()[1:]
    base = ["diff", parents[0], sha] if parents else ["show", "--format=", sha]

    def run(kind: str) -> list[str]:
        return git_bytes(mirror, *base, kind, "-z", "-M", "-C").decode().split("\0")

    statuses: list[tuple[str, str, str | None]] = []
    fields = run("--name-status")
    while len(fields) > 1:
        status = fields.pop(0)
        if status[0] in "RC":
            statuses.append((status[0], fields.pop(1), fields.pop(0)))
        else:
            statuses.append((status[0], fields.pop(0), None))
    counts: list[tuple[int, int, bool]] = []
    fields = run("--numstat")
    while len(fields) > 1:
        adds, dels, path = fields.pop(0).split("\t")
        if not path:
            fields.pop(0), fields.pop(0)
        binary = adds == "-"
        counts.append((0 if binary else int(adds), 0 if binary else int(dels), binary))
    return sorted((*st, *ct) for st, ct in zip(statuses, counts, strict=True))


async def test_detail_agrees_with_git_show(start_service: StartService, history: Path) -> None:
    async with stack(start_service, history) as s:
        statuses = set()
        for sha in git_log(s.mirror):
            reply = await s.get(f"/api/v1/repos/{REPO}/commits/{sha[:10]}")
            assert reply.status == 200, reply.body
            body = reply.body
            assert body["sha"] == sha and "decision" not in body
            files = sorted(
                (f["status"], f["path"], f["old_path"], f["additions"], f["deletions"], f["binary"])
                for f in body["files"]
            )
            assert files == git_files(s.mirror, sha), body["subject"]
            statuses |= {f[0] for f in files}
            assert body["stats"]["additions"] == sum(f[3] for f in files)
            assert body["stats"]["deletions"] == sum(f[4] for f in files)
            assert body["stats"]["total"] == body["stats"]["additions"] + body["stats"]["deletions"]
            parents = git_lines(s.mirror, "rev-list", "--parents", "-n1", sha)[0].split()[1:]
            assert body["parents"] == parents
            assert body["tree_sha"] == git_lines(s.mirror, "rev-parse", f"{sha}^{{tree}}")[0]
            assert body["committer"]["email"] in ("committer@example.org", "merger@example.org")
        assert statuses == set("AMDRCT")

        head = git_log(s.mirror)[0]
        assert (await s.get(f"/api/v1/repos/{REPO}/commits/{head.upper()}")).status == 200
        tree = git_lines(s.mirror, "rev-parse", f"{head}^{{tree}}")[0]
        blob = git_lines(s.mirror, "rev-parse", f"{head}:README.md")[0]
        for missing in (tree, blob, "0" * 40, "deadbeef"):
            reply = await s.get(f"/api/v1/repos/{REPO}/commits/{missing}")
            assert reply.status == 404 and reply.code == "commit_not_found", missing
        assert (await s.commits("sha=deadbeef")).code == "commit_not_found"
        assert (await s.commits("sha=no-such-branch")).code == "commit_not_found"

        # An ambiguous prefix: write loose blobs until one shares 4 digits with an object.
        repo = pygit2.Repository(str(s.mirror))
        taken = {str(oid)[:4] for oid in repo.odb}
        count = 0
        while True:
            oid = str(repo.create_blob(f"filler {count}\n".encode()))
            count += 1
            if oid[:4] in taken:
                break
            taken.add(oid[:4])
        for url in (f"/api/v1/repos/{REPO}/commits/{oid[:4]}", f"/api/v1/repos/{REPO}/commits"):
            query = "" if url.endswith(oid[:4]) else f"?sha={oid[:4]}"
            reply = await s.get(url + query)
            assert reply.status == 422 and reply.code == "ambiguous_sha", reply.body
            assert "more than one object" in reply.body["detail"]


async def test_verification_joins_the_cache(start_service: StartService, history: Path) -> None:
    async with stack(start_service, history) as s:
        signed = next(
            line.split()[0]
            for line in git_lines(s.mirror, "log", "--format=%H %s")
            if line.endswith("A signed commit")
        )
        raw = git_bytes(s.mirror, "cat-file", "commit", signed).decode()
        header, message = raw.split("\n\n", 1)
        lines, signature, inside = [], [], False
        for line in header.split("\n"):
            if line.startswith("gpgsig "):
                inside = True
                signature.append(line[len("gpgsig ") :])
            elif inside and line.startswith(" "):
                signature.append(line[1:])
            else:
                inside = False
                lines.append(line)
        payload = "\n".join(lines) + "\n\n" + message

        def entry(reply: Reply, sha: str) -> dict[str, Any]:
            assert reply.status == 200, reply.body
            found: dict[str, Any] = next(i for i in reply.body if i["sha"] == sha)["verification"]
            return found

        unstamped = entry(await s.commits("per_page=100"), signed)
        assert unstamped["reason"] == "unsigned" and unstamped["verified"] is False
        assert unstamped["verified_at"] is None
        assert unstamped["signature"] == "\n".join(signature) + "\n"
        assert unstamped["signature"].startswith("-----BEGIN SSH SIGNATURE-----")
        assert unstamped["payload"] == payload

        stamped_at = dt.datetime(2025, 3, 1, 10, 0, tzinfo=dt.UTC)
        await add_verification(
            s.verifier.settings, REPO, signed, reason="valid", verified_at=stamped_at
        )
        plain = git_log(s.mirror)[-1]
        await add_verification(
            s.verifier.settings, REPO, plain, reason="unsigned", verified_at=stamped_at
        )
        reply = await s.commits("per_page=100")
        valid = entry(reply, signed)
        assert valid["verified"] is True and valid["reason"] == "valid"
        assert valid["verified_at"] == "2025-03-01T10:00:00Z"
        assert valid["payload"] == payload
        assert entry(reply, plain) == {
            "verified": False,
            "reason": "unsigned",
            "signature": None,
            "payload": None,
            "verified_at": None,
        }
        detail = await s.get(f"/api/v1/repos/{REPO}/commits/{signed}")
        assert detail.body["verification"] == valid


# ---- repositories without commits, scope ------------------------------------------------------
async def test_unfetched_empty_and_unknown_repos(
    start_service: StartService, history: Path
) -> None:
    async with stack(start_service, history, mirrored=False) as s:
        # Listed by a project, no mirror configured: [] (the gateway knows the project).
        reply = await s.commits()
        assert reply.status == 200 and reply.body == [] and "Link" not in reply.headers
        reply = await s.get(f"/api/v1/repos/{REPO}/commits/abcdef1")
        assert reply.status == 404 and reply.code == "commit_not_found"
        # Configured, not fetched yet.
        await add_mirror(s.verifier.settings, REPO)
        assert (await s.commits("sha=main")).body == []
        # Fetched but empty.
        init_bare(s.mirror)
        assert (await s.commits()).body == []
        assert (await s.commits("path=src")).body == []
        reply = await s.get(f"/api/v1/repos/{REPO}/commits/abcdef1")
        assert reply.status == 404 and reply.code == "commit_not_found"
        # Nobody lists it.
        for path in (
            "/api/v1/repos/nobody/knows/commits",
            "/api/v1/repos/nobody/knows/commits/abcd",
        ):
            reply = await s.get(path)
            assert reply.status == 404 and reply.code == "repo_not_found", path


async def test_project_scoped_keys_see_their_repos_only(
    start_service: StartService, history: Path
) -> None:
    async with stack(start_service, history) as s:
        mine = await s.api.new_project(repos=["Acme/Widgets"])
        other = await s.api.new_project(repos=["acme/other"])
        _, token = await s.api.new_key("VIEWER", project=mine["id"])
        _, stranger = await s.api.new_key("AUDITOR", project=other["id"])
        head = git_log(s.mirror)[0]
        assert (await s.commits(token=token)).status == 200
        assert (await s.commits(repo="acme/WIDGETS", token=token)).status == 200
        assert (await s.get(f"/api/v1/repos/{REPO}/commits/{head}", token=token)).status == 200
        for reply in (
            await s.commits(token=stranger),
            await s.get(f"/api/v1/repos/{REPO}/commits/{head}", token=stranger),
        ):
            assert reply.status == 404 and reply.code == "repo_not_found"
        assert (await s.commits(token="gh_not_a_key")).status == 401


# ---- bad input -----------------------------------------------------------------------------------
async def test_bad_input_is_a_clear_4xx(start_service: StartService, history: Path) -> None:
    async with stack(start_service, history) as s:
        before = await stream_count(s.verifier)
        for query, field in (
            ("per_page=0", "per_page"),
            ("per_page=101", "per_page"),
            ("page=0", "page"),
            ("page=99999999999999999999", "page"),
            ("since=0001-01-01T00:00:00%2B14:00", "since"),
            ("until=9999-12-31T23:59:59-14:00", "until"),
            ("since=yesterday", "since"),
            ("since=1700000000", "since"),
            ("until=2024-01-01T00:00:00", "until"),  # no offset
            ("sha=a%00b", "sha"),
            ("path=src%00x", "path"),
            ("sha=" + "a" * 2_000, "sha"),
        ):
            reply = await s.commits(query)
            assert reply.status == 422, (query, reply.body)
            assert reply.headers["Content-Type"].startswith("application/problem+json")
            assert field in str(reply.body.get("errors", reply.body["detail"])), (query, reply.body)
        for path in ("../x", "src/../../etc", "/etc/passwd", "a//b", "a\\b", "./src"):
            reply = await s.commits(f"path={quote(path)}")
            assert reply.status == 422 and reply.code == "invalid_path", (path, reply.body)
        for sha in ("a" * 2_000, "xyz1234", "abc", "%00abcd"):
            reply = await s.get(f"/api/v1/repos/{REPO}/commits/{sha}")
            assert reply.status == 422, (sha[:20], reply.body)
        # Past the HTTP server's request-line limit: 400 before any handler runs.
        assert (await s.commits("sha=" + "a" * 10_000)).status == 400
        assert (await s.get(f"/api/v1/repos/{REPO}/commits/{'a' * 10_000}")).status == 400
        reply = await s.get("/api/v1/repos/a%00b/c/commits")
        assert reply.status == 422
        reply = await s.get("/api/v1/repos/-bad-/c/commits")
        assert reply.status == 422 and "repo" in str(reply.body["errors"])
        assert await stream_count(s.verifier) == before
