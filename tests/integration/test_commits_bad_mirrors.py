"""The commits API over mirrors gone bad: a 10 MB signature block, a corrupt object, a mirror
directory deleted under the service. Clear answers, other repos unaffected, service up."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pygit2
import pytest

from services.signature_verifier.mirrors.paths import mirror_path
from tests.conftest import StartService
from tests.integration.test_commits_api import REPO, stack
from tests.integration.test_commits_support import add_mirror, build_history, mirror_into
from tests.integration.test_gateway_support import stream_count

OTHER = "Acme/Healthy"


@pytest.fixture(scope="module")
def history() -> Iterator[Path]:
    work = Path(tempfile.mkdtemp(prefix="gatehouse-bad-mirrors-")) / "work"
    build_history(work)
    yield work


def commit_on_main(mirror: Path, *, signature: str | None = None) -> str:
    """A new commit on top of main, written as a loose object (signed when asked)."""
    repo = pygit2.Repository(str(mirror))
    parent = repo.references["refs/heads/main"].peel(pygit2.Commit)
    person = pygit2.Signature("Ada", "ada@example.org", 1_800_000_000, 0)
    if signature is None:
        oid = repo.create_commit(None, person, person, "loose\n", parent.tree_id, [parent.id])
    else:
        text = repo.create_commit_string(person, person, "big\n", parent.tree_id, [parent.id])
        oid = repo.create_commit_with_signature(text, signature)
    repo.references.create("refs/heads/main", oid, force=True)
    return str(oid)


async def test_a_10_mb_signature_block_lists_without_it(
    start_service: StartService, history: Path
) -> None:
    async with stack(start_service, history) as s:
        block = "-----BEGIN PGP SIGNATURE-----\n\n" + ("A" * 64 + "\n") * 163_840
        big = commit_on_main(s.mirror, signature=block + "-----END PGP SIGNATURE-----")
        reply = await s.commits("per_page=100")
        assert reply.status == 200, reply.body
        entry = next(item for item in reply.body if item["sha"] == big)
        assert entry["verification"]["signature"] is None
        assert entry["verification"]["payload"] is None
        assert entry["verification"]["reason"] == "unsigned"  # not stamped yet
        detail = await s.get(f"/api/v1/repos/{REPO}/commits/{big}")
        assert detail.status == 200 and detail.body["verification"]["signature"] is None
        assert (await s.commits()).status == 200


async def test_a_corrupt_object_is_a_clear_problem_and_others_still_read(
    start_service: StartService, history: Path
) -> None:
    async with stack(start_service, history) as s:
        await s.api.new_project(repos=[OTHER.lower()])
        mirror_into(history, mirror_path(s.verifier.settings, OTHER))
        await add_mirror(s.verifier.settings, OTHER)
        before = await stream_count(s.verifier)
        oid = commit_on_main(s.mirror)
        loose = s.mirror / "objects" / oid[:2] / oid[2:]
        loose.chmod(0o644)
        loose.write_bytes(b"\x00garbage, not zlib" * 10)
        for path in (f"/api/v1/repos/{REPO}/commits", f"/api/v1/repos/{REPO}/commits/{oid}"):
            reply = await s.get(path)
            assert reply.status == 503 and reply.code == "mirror_unreadable", (path, reply.body)
            assert reply.headers["Content-Type"].startswith("application/problem+json")
            assert "Traceback" not in str(reply.body)
        assert (await s.commits(repo=OTHER)).status == 200
        assert (await s.commits(repo=OTHER)).body
        assert await stream_count(s.verifier) == before


async def test_a_deleted_mirror_lists_nothing(start_service: StartService, history: Path) -> None:
    async with stack(start_service, history) as s:
        assert (await s.commits()).body
        shutil.rmtree(s.mirror)
        reply = await s.commits()
        assert reply.status == 200 and reply.body == []
        reply = await s.get(f"/api/v1/repos/{REPO}/commits/abcdef1")
        assert reply.status == 404 and reply.code == "commit_not_found"
        mirror_into(history, s.mirror)  # as the next fetch leaves it
        assert (await s.commits()).body
