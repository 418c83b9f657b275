"""The ``fetch`` job: fetch a mirror, index it, announce its new commits.

1. The clone URL is checked again (its host resolved again: a name may point elsewhere by
   now), then fetched in a thread with a deadline; the transfer counters are written to
   ``mirror_status.progress`` at most every :data:`PROGRESS_EVERY_SECONDS`.
2. A fetch that fails is recorded (``failed``, ``last_error``) and the job ends: the old
   mirror is intact, and the next push, sync or interval tries again.
3. After a fetch that succeeded: ``index_mirror`` (the verification's hook), then
   ``commit.pushed`` (``source: git``) for the default branch's new commits, with ids
   derived from (repo, branch, old head, new head, commit): a retried job publishes the
   same ids. The head announced is recorded last, so a crash before it announces again
   (the same events, dropped as duplicates), never skips.
4. Then ``mirror.fetched`` when the fetch moved any branch or tag (caches of the commits
   API drop the repo's pages). Compared on disk, before and after this fetch: a crash
   between the fetch and this event loses it (a retry finds nothing moved); caches bound
   that with their max age.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from contracts.events.commits import CommitPushed
from contracts.events.signatures import MirrorFetched
from services.signature_verifier.mirrors import git, store
from services.signature_verifier.mirrors.domain.announce import (
    ANNOUNCE_MAX,
    announcement_id,
    fetched_id,
    new_commits,
    refs_changed,
)
from services.signature_verifier.mirrors.paths import mirror_path
from services.signature_verifier.signatures.index import index_mirror
from shared.bus import Bus
from shared.jobs import Job
from shared.logging import get_logger
from shared.outbound import OutboundRefused, check_clone_url, parse_credentials
from shared.settings import Settings

log = get_logger(__name__)

PROGRESS_EVERY_SECONDS = 0.5
MESSAGE_MAX = 4096


@dataclass
class MirrorFetcher:
    pool: asyncpg.Pool
    bus: Bus
    settings: Settings

    async def run(self, job: Job) -> None:
        repo_key = str(job.payload["repo_key"])
        row = await store.mirror(self.pool, repo_key)
        if row is None:
            return  # removed since
        covered = await store.newest_pending_seq(self.pool, repo_key)
        path = mirror_path(self.settings, row.repo)
        await store.fetch_started(self.pool, repo_key, at=_now())
        try:
            fetched = await self._fetch(row, path, repo_key)
        except (git.FetchFailed, OutboundRefused) as exc:
            error = exc.detail if isinstance(exc, OutboundRefused) else str(exc)
            log.info("mirror_fetch_failed", repo=row.repo, error=error)
            await store.fetch_failed(self.pool, repo_key, at=_now(), error=error)
            return
        if await store.mirror(self.pool, repo_key) is None:
            # Removed while fetching: the removal may have found no directory to drop yet.
            await asyncio.to_thread(git.remove_mirror, path)
            return
        await index_mirror(self.pool, repo=row.repo, path=path)
        previous = await store.status(self.pool, repo_key)
        if fetched.branch is not None and fetched.head is not None:
            old = previous.head if previous.resolved_default_branch == fetched.branch else None
            await self._announce(row.repo, path, fetched.branch, old, fetched.head)
        await store.fetch_succeeded(
            self.pool,
            repo_key,
            at=_now(),
            branch=fetched.branch or "",
            head=fetched.head,
            progress=fetched.progress,
        )
        await self._announce_refs(row.repo, fetched)
        if covered is not None:
            await store.complete_covered(self.pool, repo_key, up_to_seq=covered)
        log.info("mirror_fetched", repo=row.repo, branch=fetched.branch, head=fetched.head)

    async def _fetch(self, row: store.MirrorRow, path: Path, repo_key: str) -> git.Fetched:
        await check_clone_url(row.clone_url, self.settings)
        user = token = None
        if row.credential is not None:
            value = parse_credentials(self.settings.git_credentials).get(row.credential)
            if value is None:
                raise git.FetchFailed(
                    f"the credential {row.credential!r} is not in GATEHOUSE_GIT_CREDENTIALS"
                )
            user, sep, rest = value.partition(":")
            user, token = (user, rest) if sep else (None, value)
        timeout = self.settings.git_fetch_timeout_seconds
        progress = git.Progress()
        work = asyncio.create_task(
            asyncio.to_thread(
                git.fetch_mirror,
                path,
                row.clone_url,
                branch=row.default_branch,
                user=user,
                token=token,
                deadline=time.monotonic() + timeout,
                progress=progress,
            )
        )
        # Stopped mid-fetch (the service stopping), the thread still ends: its outcome is
        # nobody's to read then.
        work.add_done_callback(lambda done: done.cancelled() or done.exception())
        reporter = asyncio.create_task(self._report(repo_key, progress))
        try:
            async with asyncio.timeout(timeout + 5):
                return await asyncio.shield(work)
        except TimeoutError:
            # The thread stops at its next callback; libgit2's own socket timeouts bound
            # a silent server.
            progress.cancelled = True
            raise git.FetchFailed(
                "the fetch took longer than GATEHOUSE_GIT_FETCH_TIMEOUT_SECONDS"
            ) from None
        finally:
            progress.cancelled = progress.cancelled or not work.done()
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter

    async def _announce_refs(self, repo: str, fetched: git.Fetched) -> None:
        """``mirror.fetched`` when refs moved: what the commits API lists may have changed
        (any branch or tag, not only the default one). Published once the status names the
        new default branch, so a reader told of it reads the new state."""
        changed = refs_changed(fetched.refs_before, fetched.refs_after)
        if not changed:
            return
        await self.bus.publish_acked(
            MirrorFetched(repo=repo, head=fetched.head, refs_changed=changed),
            aggregate=f"repo:{repo.lower()}",
            actor="system",
            correlation_id=None,
            event_id=fetched_id(repo=repo, before=fetched.refs_before, after=fetched.refs_after),
        )

    async def _report(self, repo_key: str, progress: git.Progress) -> None:
        written = 0.0
        while True:
            await asyncio.sleep(PROGRESS_EVERY_SECONDS)
            if progress.values is not None and progress.updated > written:
                written = progress.updated
                with contextlib.suppress(asyncpg.PostgresError, OSError):
                    await store.fetch_progress(self.pool, repo_key, dict(progress.values))

    async def _announce(
        self, repo: str, path: Path, branch: str, old: str | None, new: str
    ) -> None:
        chain = await asyncio.to_thread(
            git.first_parent_chain, path, new, stop=old, limit=ANNOUNCE_MAX
        )
        ancestor = old is not None and await asyncio.to_thread(git.is_ancestor, path, old, new)
        shas = new_commits(
            [c.sha for c in chain], old_head=old, old_is_ancestor=ancestor, cap=ANNOUNCE_MAX
        )
        infos = {c.sha: c for c in chain}
        for sha in shas:
            info = infos[sha]
            pushed_at = dt.datetime.fromtimestamp(
                info.committed_at, dt.timezone(dt.timedelta(minutes=info.offset_minutes))
            ).astimezone(dt.UTC)
            await self.bus.publish_acked(
                CommitPushed(
                    repo=repo,
                    commit=sha,
                    branch=branch,
                    source="git",
                    head=sha == new,
                    author=info.author[:255],
                    message=info.message[:MESSAGE_MAX],
                    pushed_at=pushed_at,
                ),
                aggregate=f"repo:{repo.lower()}",
                actor="system",
                correlation_id=None,
                event_id=announcement_id(
                    repo=repo, branch=branch, old_head=old, new_head=new, commit=sha
                ),
            )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
