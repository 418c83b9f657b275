"""The hook between fetching and verifying: after every successful fetch of a mirror (and
from ``gatehouse signatures backfill-all``) the commits of the mirror that carry a
signature are indexed and queued for verification, off the request path.

Incremental: the ref tips of the last index are remembered (``indexed_repos.tips``) and the
walk hides them, so a fetch that brought 3 commits reads 3 commits, not the history. A tip
that vanished (a force push, a gc) is simply not hidden. Only the header of each commit
object is looked at here; signatures are parsed by the verifier.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import pygit2
from pygit2.enums import ObjectType, SortMode

from services.signature_verifier.domain.commits import signature_kind
from services.signature_verifier.signatures import store
from services.signature_verifier.signatures.projection import VERIFY_JOB
from shared import jobs

_SIGNATURE_HEADERS = (b"\ngpgsig ", b"\ngpgsig-sha256 ")


def _signature_kind(raw: bytes) -> str | None:
    """The kind of the commit's signature, from its header alone; None when unsigned."""
    end = raw.find(b"\n\n")
    header = raw if end < 0 else raw[:end]
    for name in _SIGNATURE_HEADERS:
        at = header.find(name)
        if at >= 0:
            line_end = header.find(b"\n", at + 1)
            first = header[at + len(name) : line_end if line_end >= 0 else len(header)]
            return signature_kind(first.decode("utf-8", "replace"))
    return None


def _tips(repo: pygit2.Repository) -> dict[str, str]:
    """Every ref that leads to a commit (tags peeled), by name."""
    found: dict[str, str] = {}
    for name in repo.references:
        try:
            target = repo.references[name].peel(ObjectType.COMMIT)
        except (pygit2.GitError, KeyError, ValueError, pygit2.InvalidSpecError):
            continue  # a ref to a tree or blob, or a dangling one
        found[name] = str(target.id)
    return found


def walk_signed(path: str, known: dict[str, str]) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """(oid, kind) of the signed commits reachable from the refs of ``path`` and not from
    the ``known`` tips, and the refs' tips now."""
    repo = pygit2.Repository(path)
    tips = _tips(repo)
    fresh = sorted({oid for oid in tips.values()} - set(known.values()))
    if not fresh:
        return [], tips
    walker = repo.walk(None, SortMode.NONE)
    for oid in fresh:
        walker.push(pygit2.Oid(hex=oid))
    for oid in set(known.values()):
        try:
            walker.hide(pygit2.Oid(hex=oid))
        except (KeyError, ValueError, pygit2.GitError):
            continue  # gone from the mirror: nothing to hide
    signed: list[tuple[str, str]] = []
    for commit in walker:
        kind = _signature_kind(commit.read_raw())
        if kind is not None:
            signed.append((str(commit.id), kind))
    return signed, tips


async def index_mirror(pool: asyncpg.Pool, *, repo: str, path: Path) -> int:
    """Index the signed commits of the bare repository at ``path`` (the mirror of ``repo``)
    not indexed yet, and queue their verification. Returns how many were new."""
    repo_key = store.key_of(repo)
    known = await pool.fetchval(
        "SELECT tips FROM signature_verifier.indexed_repos WHERE repo_key = $1", repo_key
    )
    signed, tips = await asyncio.to_thread(walk_signed, str(path), dict(known or {}))
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO signature_verifier.indexed_repos (repo_key, repo, path, tips) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (repo_key) DO UPDATE SET repo = EXCLUDED.repo, "
            "path = EXCLUDED.path, tips = EXCLUDED.tips",
            repo_key,
            repo,
            str(path),
            tips,
        )
        inserted = await conn.fetchval(
            "WITH added AS (INSERT INTO signature_verifier.signed_commits (repo_key, oid, kind) "
            "SELECT $1, oid, kind FROM unnest($2::text[], $3::text[]) AS t(oid, kind) "
            "ON CONFLICT DO NOTHING RETURNING 1) SELECT count(*) FROM added",
            repo_key,
            [oid for oid, _ in signed],
            [kind for _, kind in signed],
        )
        if inserted:
            await queue_verification(conn, repo_key)
    return int(inserted or 0)


async def queue_verification(conn: asyncpg.Connection, repo_key: str) -> None:
    """A job verifying the commits of ``repo_key`` not verified yet (one open at a time)."""
    version = await store.key_set_version(conn)
    open_job = await conn.fetchval(
        f"SELECT true FROM {store.JOBS_TABLE} WHERE kind = $1 AND status = 'pending' "
        "AND payload->>'repo_key' = $2",
        VERIFY_JOB,
        repo_key,
    )
    if open_job:
        return
    await jobs.enqueue(
        conn,
        store.JOBS_TABLE,
        job_id=f"{VERIFY_JOB}:{repo_key}:{uuid.uuid4().hex}",
        kind=VERIFY_JOB,
        payload={"repo_key": repo_key},
        sequence=version,
    )
