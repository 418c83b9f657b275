"""``svc.signature-verifier.commits_list`` and ``commit_get``: GitHub's commits API over the
bare mirrors, each commit joined with its cached verification.

Arguments are checked before anything is read; git runs in a worker thread (libgit2
blocks); the cache is read with one query per page. Nothing here runs cryptography: a
commit without a stamped row reads ``unsigned`` until the verifier stamps it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field

import asyncpg

from contracts.rpc.signatures import (
    CommitDetailView,
    CommitGetRequest,
    CommitsListRequest,
    CommitsPage,
    CommitView,
)
from services.signature_verifier.commits import git_reader, store
from services.signature_verifier.commits.domain.arguments import repo_path
from services.signature_verifier.commits.domain.errors import MirrorNotFound, ReadModelBehind
from services.signature_verifier.commits.domain.views import (
    VerificationRow,
    split_message,
    verification,
)
from services.signature_verifier.mirrors.paths import mirror_path
from shared.projection import ProjectionRunner
from shared.rpc import CallContext
from shared.settings import Settings

SHORT_SHA = 7
# How long a read waits for the read models to apply an event its caller already saw: a
# healthy projection applies one in milliseconds.
READ_AFTER_TIMEOUT_SECONDS = 2.0


def _seconds(moment: dt.datetime | None) -> int | None:
    """Unix seconds (a time without offset read as UTC); git compares whole seconds."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp())


def _entry(record: git_reader.CommitRecord, row: VerificationRow | None) -> CommitView:
    subject, body = split_message(record.message)
    return CommitView(
        sha=record.sha,
        short_sha=record.sha[:SHORT_SHA],
        subject=subject,
        body=body,
        author=record.author,
        verification=verification(record.signed, row),
    )


@dataclass
class CommitsHandlers:
    pool: asyncpg.Pool
    settings: Settings
    # The projections behind the mirrors rows and the verification rows (None in tests that
    # build the handlers alone: positions are then not awaited).
    mirrors: ProjectionRunner | None = None
    signatures: ProjectionRunner | None = None
    repos: git_reader.MirrorRepos = field(default_factory=git_reader.MirrorRepos)

    async def _read_after(self, *, verifications_at: int, mirror_at: int) -> None:
        """Wait until the read models applied the events the caller saw (see
        ``contracts.rpc.signatures.StreamPosition``)."""
        for runner, position in ((self.signatures, verifications_at), (self.mirrors, mirror_at)):
            if runner is None or runner.checkpoint >= position:
                continue
            try:
                await runner.wait_for(position, timeout=READ_AFTER_TIMEOUT_SECONDS)
            except TimeoutError:
                raise ReadModelBehind(
                    f"the {runner.projection.name} read model has not applied event {position}"
                ) from None

    async def _mirror(self, repo: str) -> store.MirrorRow:
        found = await store.mirror(self.pool, repo)
        if found is None:
            raise MirrorNotFound(f"no git mirror is configured for {repo}")
        return found

    async def list(self, request: CommitsListRequest, _ctx: CallContext) -> CommitsPage:
        path = repo_path(request.path) if request.path is not None else None
        await self._read_after(
            verifications_at=request.verifications_at, mirror_at=request.mirror_at
        )
        found = await self._mirror(request.repo)
        spec = git_reader.ListSpec(
            sha=request.sha,
            default_branch=found.default_branch,
            path=path,
            author=request.author,
            since=_seconds(request.since),
            until=_seconds(request.until),
            skip=(request.page - 1) * request.per_page,
            limit=request.per_page,
        )
        where = mirror_path(self.settings, request.repo)
        records, has_next = await asyncio.to_thread(
            self.repos.read, where, lambda repo: git_reader.list_commits(repo, spec)
        )
        rows = await store.verifications(self.pool, request.repo, [r.sha for r in records])
        return CommitsPage(
            items=[_entry(record, rows.get(record.sha)) for record in records],
            has_next=has_next,
        )

    async def get(self, request: CommitGetRequest, _ctx: CallContext) -> CommitDetailView:
        await self._read_after(
            verifications_at=request.verifications_at, mirror_at=request.mirror_at
        )
        await self._mirror(request.repo)
        where = mirror_path(self.settings, request.repo)
        sha = request.sha.lower()
        detail = await asyncio.to_thread(
            self.repos.read, where, lambda repo: git_reader.commit_detail(repo, sha)
        )
        record = detail.record
        rows = await store.verifications(self.pool, request.repo, [record.sha])
        entry = _entry(record, rows.get(record.sha))
        return CommitDetailView(
            sha=entry.sha,
            short_sha=entry.short_sha,
            subject=entry.subject,
            body=entry.body,
            author=entry.author,
            committer=detail.committer,
            parents=detail.parents,
            tree_sha=detail.tree_sha,
            files=detail.files,
            stats=detail.stats,
            verification=entry.verification,
        )
