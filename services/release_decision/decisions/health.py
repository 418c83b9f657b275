"""Is the verification graph reachable, and is the evidence fresh?

Reachability: the bus, this projection's lag, and the scanner and signature-verifier
answering a ``nats.micro`` PING (``$SRV.PING.<service>``, a short timeout). A service with
no endpoint yet is ``unavailable`` without failing the call. Freshness: the newest promoted
snapshot's age against the policy's ``max_snapshot_age_hours``. Missing evidence: for each
repo in scope, the required evidence its newest decided commit lacks. Dead letters: events
this service, the scanner or the signature-verifier could not apply (each answers for its
own over ``svc.<service>.dead_letters``) make the answer ``degraded``: the decisions may
lack what those events said. Failed jobs: a job of this service that exhausted its attempts
(``shared.jobs``) makes it ``degraded`` too; a failed ``publish_decided`` names the commit
and revision whose ``release.decided`` was never published.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import asyncpg
import nats.errors

from contracts.rpc import dead_letters
from contracts.rpc.release_decision import (
    SERVICE,
    FailedJobRef,
    HealthView,
    LatestPromoted,
    MissingEvidence,
    VulnDbHealth,
)
from services.release_decision.decisions import store
from services.release_decision.decisions.domain.rules import vulndb_stale
from shared import jobs
from shared.bus import Bus
from shared.errors import GatehouseError
from shared.projection import ProjectionRunner, dead_letters_view, outstanding_dead_letters
from shared.rpc import CallContext, call
from shared.settings import Settings

PING_TIMEOUT_SECONDS = 0.5
MISSING_MAX = 200
FAILED_JOBS_MAX = 50


async def ping(bus: Bus, service: str) -> str:
    try:
        await bus.nc.request(f"$SRV.PING.{service}", b"", timeout=PING_TIMEOUT_SECONDS)
    except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
        return "unavailable"
    except nats.errors.Error:
        return "error"
    return "answering"


async def _dead_letters_of(bus: Bus, service: str) -> list[dead_letters.DeadLetterRef]:
    """The newest outstanding dead letters of another service, as it reports them."""
    try:
        view = await call(
            bus,
            service,
            dead_letters.OPERATION,
            dead_letters.DeadLettersRequest(),
            dead_letters.DeadLettersView,
            ctx=CallContext(request_id="", actor="system"),
            timeout=PING_TIMEOUT_SECONDS,
        )
    except GatehouseError:
        return []  # not answering: its ping says so
    return [letter for projection in view.projections for letter in projection.newest]


async def _failed_jobs(pool: asyncpg.Pool, schema: str) -> list[FailedJobRef]:
    """This service's failed jobs, newest first; a decision job with what it announces."""
    found: list[FailedJobRef] = []
    for table in await jobs.job_tables(pool, schema):
        rows = await pool.fetch(
            "SELECT id, kind, attempts, last_error, payload->'event'->>'repo' AS repo, "
            "payload->'event'->>'commit' AS commit, "
            "(payload->'event'->>'revision')::int AS revision, "
            "payload->'event'->>'decision' AS decision "
            f"FROM {table} WHERE status = 'failed' ORDER BY enqueued_seq DESC, id LIMIT $1",
            FAILED_JOBS_MAX,
        )
        name = table.split(".", 1)[1]
        found += [
            FailedJobRef(
                id=f"{SERVICE}:{name}:{r['id']}",
                kind=r["kind"],
                attempts=r["attempts"],
                error=(r["last_error"] or "")[:500],
                repo=r["repo"],
                commit=r["commit"],
                revision=r["revision"],
                decision=r["decision"] if r["decision"] in ("SHIP", "NO_SHIP") else None,
            )
            for r in rows
        ]
    return found[:FAILED_JOBS_MAX]


async def _repos_in_scope(
    pool: asyncpg.Pool, repo: str | None, project_id: str | None
) -> list[str]:
    if repo is not None:
        return [repo]
    rows = await pool.fetch(
        "SELECT DISTINCT unnest(repos) AS repo FROM release_decision.projects "
        "WHERE NOT archived AND ($1::text IS NULL OR id = $1) ORDER BY 1",
        project_id,
    )
    return [r["repo"] for r in rows]


async def _missing(pool: asyncpg.Pool, repos: list[str]) -> list[MissingEvidence]:
    # Newest by when the commit was first decided: a policy change decides every commit
    # again in one event, after which the current rows' order says nothing.
    rows = await pool.fetch(
        "SELECT DISTINCT ON (d.repo) d.repo, d.commit, d.blockers "
        "FROM release_decision.decisions d LEFT JOIN release_decision.decision_history h "
        "ON h.repo = d.repo AND h.commit = d.commit AND h.revision = 1 "
        "WHERE d.repo = ANY($1::text[]) "
        "ORDER BY d.repo, coalesce(h.seq, d.seq) DESC, d.commit",
        repos,
    )
    newest = {r["repo"]: r for r in rows}
    missing: list[MissingEvidence] = []
    for repo in repos:
        row = newest.get(repo)
        if row is None:
            missing.append(
                MissingEvidence(
                    repo=repo, kind="sbom", message="no commit of this repo has evidence"
                )
            )
            continue
        for blocker in row["blockers"]:
            if blocker["code"] in ("no_evidence", "evidence_pending"):
                missing.append(
                    MissingEvidence(
                        repo=repo,
                        commit=row["commit"],
                        kind=blocker["ref"] if blocker["code"] == "no_evidence" else "sbom",
                        message=blocker["message"],
                    )
                )
    return missing[:MISSING_MAX]


async def _latest_promoted(
    pool: asyncpg.Pool, repo: str | None, project_id: str | None, *, now: dt.datetime
) -> LatestPromoted:
    row = await pool.fetchrow(
        "SELECT p.snapshot_id, p.repo, p.commit, p.project_id, p.promoted_at, "
        "s.status, s.updated_at AS scanned_at FROM release_decision.promotions p "
        "LEFT JOIN release_decision.scans s ON s.scan_id = p.snapshot_id "
        "WHERE ($1::text IS NULL OR p.repo = $1) AND ($2::text IS NULL OR p.project_id = $2) "
        "ORDER BY p.seq DESC LIMIT 1",
        repo,
        project_id,
    )
    policy = await store.policy_for(pool, row["project_id"] if row else project_id)
    if row is None:
        return LatestPromoted(max_age_hours=policy.max_snapshot_age_hours, fresh=False)
    # The snapshot's age is the time since it was scanned (updated_at of a succeeded scan
    # is its completion). A deleted one is evidence no more: never fresh, and its
    # updated_at is the deletion, so its age counts from the promotion at least.
    kept = row["status"] == "succeeded"
    scanned_at = row["scanned_at"] if kept else None
    age = (now - (scanned_at or row["promoted_at"])).total_seconds() / 3600
    return LatestPromoted(
        snapshot_id=row["snapshot_id"],
        repo=row["repo"],
        commit=row["commit"],
        promoted_at=row["promoted_at"],
        age_hours=round(age, 3),
        max_age_hours=policy.max_snapshot_age_hours,
        fresh=kept and age <= policy.max_snapshot_age_hours,
    )


async def _vulndb(
    pool: asyncpg.Pool, repo: str | None, project_id: str | None, *, now: dt.datetime
) -> VulnDbHealth:
    """Judged at read time against the scope's policy: a database goes stale with no event,
    and a decision made while it was fresh says so only when something decides it again."""
    project = project_id or (await store.project_for_repo(pool, repo) if repo else None)
    policy = await store.policy_for(pool, project)
    limit = policy.max_vulndb_age_hours
    newest = await store.newest_vulndb_import(pool)
    if newest is None:
        return VulnDbHealth(
            status="missing",
            max_age_hours=limit,
            reason="no OSV advisories were imported: every snapshot decides NO_SHIP",
        )
    imported_at = newest["imported_at"]
    age = round((now - imported_at).total_seconds() / 3600, 3)
    stale = vulndb_stale(policy, imported_at, now)
    return VulnDbHealth(
        status="stale" if stale else "fresh",
        version=newest["seq"],
        imported_at=imported_at,
        age_hours=age,
        max_age_hours=limit,
        reason=f"the newest OSV import is {age:.1f} hours old, over {limit:g}" if stale else "",
    )


async def check(
    *,
    pool: asyncpg.Pool,
    bus: Bus,
    runner: ProjectionRunner,
    settings: Settings,
    repo: str | None,
    project_id: str | None,
) -> HealthView:
    now = dt.datetime.now(dt.UTC)
    scanner = await ping(bus, "scanner")
    verifier = await ping(bus, "signature-verifier")
    latest = await _latest_promoted(pool, repo, project_id, now=now)
    missing = await _missing(pool, await _repos_in_scope(pool, repo, project_id))
    vulndb = await _vulndb(pool, repo, project_id, now=now)
    lag_ok = runner.lag <= settings.max_ready_lag
    working = (
        bus.connected
        and lag_ok
        and scanner == "answering"
        and verifier != "error"
        # Nothing promoted yet is not stale; a stale promotion is.
        and (latest.snapshot_id is None or latest.fresh)
        and vulndb.status == "fresh"
    )
    own = dead_letters_view(SERVICE, await outstanding_dead_letters(pool, runner.projection.schema))
    letters = [letter for projection in own.projections for letter in projection.newest]
    for service, answer in (("scanner", scanner), ("signature-verifier", verifier)):
        if answer == "answering":
            letters += await _dead_letters_of(bus, service)
    failed = await _failed_jobs(pool, runner.projection.schema)
    status: Literal["ok", "degraded", "failing"] = (
        "failing" if not working else "degraded" if letters or failed else "ok"
    )
    return HealthView(
        ok=status == "ok",
        status=status,
        dead_letters=letters,
        failed_jobs=failed,
        bus=bus.connected,
        projection_lag=runner.lag,
        projection_lag_max=settings.max_ready_lag,
        scanner=scanner,
        signature_verifier=verifier,
        latest_promoted=latest,
        missing_evidence=missing,
        vulndb=vulndb,
    )
