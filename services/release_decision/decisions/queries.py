"""Reads of decisions: the current one (what ``decision_get`` serves and what other parts of
this service use), one as of a time, and the history."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg
import msgspec

from contracts.events.releases import Blocker, EvidenceRef
from contracts.rpc.release_decision import (
    Baseline,
    DecisionHistoryPage,
    DecisionHistoryQuery,
    DecisionRevision,
    DecisionView,
)
from services.release_decision.decisions import store
from services.release_decision.decisions.domain.model import Evidence
from services.release_decision.decisions.domain.rules import evaluate
from services.release_decision.decisions.errors import HeadUnknown, RepoNotFound
from services.release_decision.repos import keyed, repo_key
from shared.pagination import decode_cursor, split_page

Queryable = store.Queryable

_COLUMNS = (
    "repo, commit, project_id, revision, decision, blockers, blocker_total, policy_version, "
    "policy_scope, evidence, evaluated_at"
)


async def resolve_commit(db: Queryable, repo: str, commit: str) -> str:
    """``commit`` in lower case; HEAD: the newest commit seen on the default branch of the
    repo's project (404 ``head_unknown`` when none was seen).

    Evidence may name a commit shorter or longer than the caller does (an upload with
    ``commit=3f2a9c1``, a CI job asking with the full SHA): when no decision has exactly
    this id, the one decided commit of the repo that it abbreviates, or that abbreviates
    it, is meant (none or several: the id as given)."""
    if commit != "HEAD":
        commit = commit.lower()
        exact = await db.fetchval(
            "SELECT 1 FROM release_decision.decisions WHERE repo = $1 AND commit = $2",
            repo,
            commit,
        )
        if exact:
            return commit
        rows = await db.fetch(
            "SELECT commit FROM release_decision.decisions WHERE repo = $1 "
            "AND (starts_with(commit, $2) OR starts_with($2, commit)) LIMIT 2",
            repo,
            commit,
        )
        return str(rows[0]["commit"]) if len(rows) == 1 else commit
    project_id = await store.project_for_repo(db, repo)
    if project_id is None:
        raise RepoNotFound(f"no project lists {repo}")
    head = await db.fetchval(
        "SELECT h.commit FROM release_decision.heads h JOIN release_decision.projects p "
        "ON p.id = $2 AND h.branch = p.default_branch WHERE h.repo = $1",
        repo,
        project_id,
    )
    if head is None:
        raise HeadUnknown(f"no commit of {repo} has been seen on its default branch")
    return str(head)


async def baseline_of(db: Queryable, repo: str) -> Baseline:
    row = await db.fetchrow(
        "SELECT id, snapshot_id, commit, target_status, promoted_at "
        "FROM release_decision.promotions WHERE repo = $1 ORDER BY seq DESC LIMIT 1",
        repo,
    )
    if row is None:
        return Baseline()
    return Baseline(
        snapshot_id=row["snapshot_id"],
        commit_sha=row["commit"],
        promotion_id=row["id"],
        target_status=row["target_status"],
        promoted_at=row["promoted_at"],
    )


def _view(row: asyncpg.Record | dict[str, Any], baseline: Baseline) -> DecisionView:
    return DecisionView(
        repo=row["repo"],
        commit=row["commit"],
        project_id=row["project_id"],
        decision=row["decision"],
        blockers=[msgspec.convert(b, Blocker) for b in row["blockers"]],
        blocker_total=row["blocker_total"],
        baseline=baseline,
        evaluated_at=row["evaluated_at"],
        policy_version=row["policy_version"],
        policy_scope=row["policy_scope"],
        revision=row["revision"],
        evidence=msgspec.convert(row["evidence"], EvidenceRef),
    )


async def _undecided(db: Queryable, repo: str, commit: str, *, at: dt.datetime) -> DecisionView:
    """A commit of a known repo without a decision (revision 0): the policy applied to no
    evidence at all, which never ships."""
    if not await store.repo_known(db, repo):
        raise RepoNotFound(f"no project lists {repo} and no evidence names it")
    project_id = await store.project_for_repo(db, repo)
    policy = await store.policy_for(db, project_id)
    result = evaluate(policy, Evidence(repo=repo, commit=commit))
    return DecisionView(
        repo=repo,
        commit=commit,
        project_id=project_id,
        decision=result.decision,
        blockers=list(result.blockers),
        blocker_total=len(result.blockers),
        baseline=await baseline_of(db, repo),
        evaluated_at=at,
        policy_version=policy.version,
        policy_scope=policy.scope,  # type: ignore[arg-type]
        revision=0,
    )


async def current_decision(conn: Queryable, repo: str, commit: str) -> DecisionView:
    """The decision of ``repo`` at ``commit`` (a sha, or HEAD) as it stands now.

    404 ``repo_not_found`` when no project lists the repo and no evidence names it; a
    commit never seen is NO_SHIP ``no_evidence`` with revision 0."""
    repo = repo_key(repo)
    commit = await resolve_commit(conn, repo, commit)
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM release_decision.decisions WHERE repo = $1 AND commit = $2",
        repo,
        commit,
    )
    if row is None:
        return await _undecided(conn, repo, commit, at=dt.datetime.now(dt.UTC))
    return _view(row, await baseline_of(conn, repo))


async def decision_as_of(
    conn: Queryable, repo: str, commit: str, as_of: dt.datetime
) -> DecisionView:
    """The decision as it was at ``as_of`` (its newest revision evaluated by then); before
    the first one, NO_SHIP ``no_evidence``. The baseline is the one of that time too."""
    repo = repo_key(repo)
    commit = await resolve_commit(conn, repo, commit)
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM release_decision.decision_history "
        "WHERE repo = $1 AND commit = $2 AND evaluated_at <= $3 "
        "ORDER BY revision DESC LIMIT 1",
        repo,
        commit,
        as_of,
    )
    promoted = await conn.fetchrow(
        "SELECT id, snapshot_id, commit, target_status, promoted_at "
        "FROM release_decision.promotions WHERE repo = $1 AND promoted_at <= $2 "
        "ORDER BY seq DESC LIMIT 1",
        repo,
        as_of,
    )
    baseline = (
        Baseline(
            snapshot_id=promoted["snapshot_id"],
            commit_sha=promoted["commit"],
            promotion_id=promoted["id"],
            target_status=promoted["target_status"],
            promoted_at=promoted["promoted_at"],
        )
        if promoted
        else Baseline()
    )
    if row is None:
        view = await _undecided(conn, repo, commit, at=as_of)
        return msgspec.structs.replace(view, baseline=baseline)
    return _view(row, baseline)


def _revision(row: asyncpg.Record) -> DecisionRevision:
    return DecisionRevision(
        repo=row["repo"],
        commit=row["commit"],
        project_id=row["project_id"],
        revision=row["revision"],
        decision=row["decision"],
        blockers=[msgspec.convert(b, Blocker) for b in row["blockers"]],
        blocker_total=row["blocker_total"],
        policy_version=row["policy_version"],
        policy_scope=row["policy_scope"],
        evaluated_at=row["evaluated_at"],
        cause_event_id=row["cause_event_id"],
        cause_event_type=row["cause_event_type"],
        evidence=msgspec.convert(row["evidence"], EvidenceRef),
    )


def cursor_key(cursor: str | None, kinds: tuple[type, ...]) -> tuple[Any, ...] | None:
    """The key of a cursor of these lists, each part of the kind its column holds, else
    422 ``invalid_cursor``."""
    return decode_cursor(cursor, kinds=kinds) if cursor else None


async def history(db: Queryable, query: DecisionHistoryQuery) -> DecisionHistoryPage:
    """Revisions, newest first: of one commit, or of every commit of the repo."""
    query = keyed(query)
    if not await store.repo_known(db, query.repo):
        raise RepoNotFound(f"no project lists {query.repo} and no evidence names it")
    columns = f"{_COLUMNS}, cause_event_id, cause_event_type, seq"
    if query.commit is not None:
        # The commit as the decision endpoint resolves it, so a short id, another case or
        # HEAD lists the revisions of the decision it answers.
        commit = await resolve_commit(db, query.repo, query.commit)
        after = cursor_key(query.cursor, (int,)) or (2**31 - 1,)
        rows = await db.fetch(
            f"SELECT {columns} FROM release_decision.decision_history "
            "WHERE repo = $1 AND commit = $2 AND revision < $3::bigint "
            "ORDER BY revision DESC LIMIT $4",
            query.repo,
            commit,
            after[0],
            query.limit + 1,
        )
        page, cursor = split_page(rows, limit=query.limit, key=lambda r: (r["revision"],))
    else:
        key = cursor_key(query.cursor, (int, str, int))
        rows = await db.fetch(
            f"SELECT {columns} FROM release_decision.decision_history WHERE repo = $1 "
            "AND ($2::bigint IS NULL OR (seq, commit, revision) < ($2, $3::text, $4::bigint)) "
            "ORDER BY seq DESC, commit DESC, revision DESC LIMIT $5",
            query.repo,
            key[0] if key else None,
            key[1] if key else None,
            key[2] if key else None,
            query.limit + 1,
        )
        page, cursor = split_page(
            rows, limit=query.limit, key=lambda r: (r["seq"], r["commit"], r["revision"])
        )
    return DecisionHistoryPage(items=[_revision(r) for r in page], next_cursor=cursor)
