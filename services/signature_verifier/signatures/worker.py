"""The verification jobs (``signature_jobs``, run by a ``shared.jobs.JobWorker``):

* ``verify``: the commits of a mirror indexed and not verified yet (``checked_version`` NULL).
* ``backfill`` (a key uploaded): every indexed commit whose signature names one of the key's
  ids, in every mirror; progress in ``key_backfills``, shown on the key.
* ``revoke`` (a key deleted): every row the key stamped is verified again without it; a
  commit no other key answers for reads ``unsigned``.
* ``restamp`` (an e-mail became verified): the owner's ``unverified_email`` rows.
* ``reverify_all`` (``gatehouse signatures backfill-all``): every mirror indexed from
  scratch and every signed commit verified again; progress in ``reverify_runs``.

Each publishes only verdicts that differ from the cache (``verifier.py``), so running a job
twice (a lost lease) stamps nothing twice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from services.signature_verifier.mirrors.paths import mirror_path
from services.signature_verifier.signatures import store
from services.signature_verifier.signatures.index import index_mirror
from services.signature_verifier.signatures.projection import (
    BACKFILL_JOB,
    RESTAMP_JOB,
    REVERIFY_ALL_JOB,
    REVOKE_JOB,
    VERIFY_JOB,
)
from services.signature_verifier.signatures.verifier import ROUND, Mode, Progress, Verifier
from shared.jobs import Job
from shared.logging import get_logger
from shared.settings import Settings

log = get_logger(__name__)


@dataclass
class VerificationWorker:
    pool: asyncpg.Pool
    verifier: Verifier
    settings: Settings

    async def run(self, job: Job) -> None:
        handlers = {
            VERIFY_JOB: self._verify,
            BACKFILL_JOB: self._backfill,
            REVOKE_JOB: self._revoke,
            RESTAMP_JOB: self._restamp,
            REVERIFY_ALL_JOB: self._reverify_all,
        }
        await handlers[job.kind](job.payload)

    async def _mirror(self, repo_key: str) -> tuple[str, str] | None:
        row = await self.pool.fetchrow(
            "SELECT repo, path FROM signature_verifier.indexed_repos WHERE repo_key = $1", repo_key
        )
        return (row["repo"], row["path"]) if row is not None else None

    async def _verify_rows(
        self, rows: Sequence[Any], *, mode: Mode = "stamp", progress: Progress | None = None
    ) -> None:
        """Verify (repo_key, oid) rows, mirror by mirror."""
        by_repo: defaultdict[str, list[str]] = defaultdict(list)
        for row in rows:
            by_repo[row["repo_key"]].append(row["oid"])
        for repo_key, oids in sorted(by_repo.items()):
            mirror = await self._mirror(repo_key)
            if mirror is None:
                log.warning("verification_mirror_unknown", repo=repo_key, commits=len(oids))
                if progress is not None:
                    await progress(len(oids))
                continue
            repo, path = mirror
            await self.verifier.verify_repo(
                repo=repo, path=path, oids=oids, mode=mode, progress=progress
            )

    # ---- the jobs ---------------------------------------------------------------------------
    async def _verify(self, payload: dict[str, Any], progress: Progress | None = None) -> None:
        repo_key = payload["repo_key"]
        mirror = await self._mirror(repo_key)
        if mirror is None:
            return
        repo, path = mirror
        while True:
            oids = [
                r["oid"]
                for r in await self.pool.fetch(
                    "SELECT oid FROM signature_verifier.signed_commits WHERE repo_key = $1 "
                    "AND checked_version IS NULL ORDER BY oid LIMIT $2",
                    repo_key,
                    ROUND,
                )
            ]
            if not oids:
                return
            await self.verifier.verify_repo(repo=repo, path=path, oids=oids, progress=progress)

    async def _backfill(self, payload: dict[str, Any]) -> None:
        key_store_id = int(payload["key_store_id"])
        rows = await self.pool.fetch(
            "SELECT repo_key, oid FROM signature_verifier.signed_commits "
            "WHERE issuer = ANY($1::text[]) ORDER BY repo_key, oid",
            list(payload["key_ids"]),
        )
        await self.pool.execute(
            "INSERT INTO signature_verifier.key_backfills (key_store_id, state, done, total) "
            "VALUES ($1, 'running', 0, $2) ON CONFLICT (key_store_id) DO UPDATE "
            "SET state = 'running', done = 0, total = EXCLUDED.total",
            key_store_id,
            len(rows),
        )

        async def progress(count: int) -> None:
            await self.pool.execute(
                "UPDATE signature_verifier.key_backfills SET done = least(done + $2, total) "
                "WHERE key_store_id = $1",
                key_store_id,
                count,
            )

        await self._verify_rows(rows, progress=progress)
        await self.pool.execute(
            "UPDATE signature_verifier.key_backfills SET state = 'done', done = total "
            "WHERE key_store_id = $1",
            key_store_id,
        )

    async def _revoke(self, payload: dict[str, Any]) -> None:
        rows = await self.pool.fetch(
            "SELECT repo_key, oid FROM signature_verifier.verifications "
            "WHERE key_store_id = $1 ORDER BY repo_key, oid",
            int(payload["key_store_id"]),
        )
        await self._verify_rows(rows, mode="revoke")

    async def _restamp(self, payload: dict[str, Any]) -> None:
        rows = await self.pool.fetch(
            "SELECT v.repo_key, v.oid FROM signature_verifier.verifications v "
            "WHERE v.reason = 'unverified_email' AND v.key_store_id IN ("
            "SELECT id FROM signature_verifier.gpg_keys WHERE login_key = $1 UNION ALL "
            "SELECT id FROM signature_verifier.ssh_keys WHERE login_key = $1) "
            "ORDER BY v.repo_key, v.oid",
            store.key_of(payload["login"]),
        )
        await self._verify_rows(rows)

    async def _reverify_all(self, payload: dict[str, Any]) -> None:
        run_id = payload["run_id"]
        await self._run_state(run_id, "indexing")
        mirrors: dict[str, tuple[str, Path]] = {}
        for row in await self.pool.fetch(
            "SELECT repo_key, repo, path FROM signature_verifier.indexed_repos"
        ):
            mirrors[row["repo_key"]] = (row["repo"], Path(row["path"]))
        for row in await self.pool.fetch("SELECT repo_key, repo FROM signature_verifier.mirrors"):
            mirrors[row["repo_key"]] = (row["repo"], mirror_path(self.settings, row["repo"]))
        for repo_key, (repo, path) in sorted(mirrors.items()):
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    "DELETE FROM signature_verifier.signed_commits WHERE repo_key = $1", repo_key
                )
                await conn.execute(
                    "UPDATE signature_verifier.indexed_repos SET tips = '{}' WHERE repo_key = $1",
                    repo_key,
                )
            if not path.exists():
                log.warning("reverify_mirror_missing", repo=repo, path=str(path))
                continue
            await index_mirror(self.pool, repo=repo, path=path)
        total = await self.pool.fetchval(
            "SELECT count(*) FROM signature_verifier.signed_commits WHERE checked_version IS NULL"
        )
        await self.pool.execute(
            "UPDATE signature_verifier.reverify_runs SET state = 'verifying', total = $2, "
            "done = 0 WHERE id = $1",
            run_id,
            total,
        )

        async def progress(count: int) -> None:
            await self.pool.execute(
                "UPDATE signature_verifier.reverify_runs SET done = least(done + $2, total) "
                "WHERE id = $1",
                run_id,
                count,
            )

        for repo_key in sorted(mirrors):
            await self._verify({"repo_key": repo_key}, progress)
        await self.pool.execute(
            "UPDATE signature_verifier.reverify_runs SET state = 'done', done = total, "
            "finished_at = now() WHERE id = $1",
            run_id,
        )

    async def _run_state(self, run_id: str, state: str) -> None:
        await self.pool.execute(
            "UPDATE signature_verifier.reverify_runs SET state = $2 WHERE id = $1", run_id, state
        )

    async def give_up(self, job: Job) -> None:
        """After the attempts: a backfill shows done (what could be verified is), a
        backfill-all run shows failed, so neither waits forever."""
        if job.kind == BACKFILL_JOB:
            await self.pool.execute(
                "UPDATE signature_verifier.key_backfills SET state = 'done' "
                "WHERE key_store_id = $1",
                int(job.payload["key_store_id"]),
            )
        elif job.kind == REVERIFY_ALL_JOB:
            await self.pool.execute(
                "UPDATE signature_verifier.reverify_runs SET state = 'failed', "
                "error = 'gave up after the attempts (see gatehouse jobs list)', "
                "finished_at = now() WHERE id = $1",
                job.payload["run_id"],
            )
