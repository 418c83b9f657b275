"""Events -> the decisions read model (evidence per (repo, commit), decisions, history).

Each event that changes a commit's evidence decides that commit again in the same
transaction (``recorder.decide``): projects, scans and the findings in their result blob,
``finding.*`` changes, ``scan.relicensed``, ``commit.verified``; ``policy.changed`` (kind
release) decides again every commit of the projects it concerns (the org policy: all).
``commit.pushed`` moves branch heads, ``release.promoted`` records promotions (the
baseline), and ``release.decided`` finishes the job that published it. Registry artifacts
(``artifact.*``, ``repository.deleted``; ``artifacts.py``) are recorded, and a block that
starts or stops applying to one decides its provenance commit again (``artifact_blocked``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg
import msgspec

from contracts.envelope import Event
from contracts.events.commits import CommitPushed, CommitVerified
from contracts.events.identity import ProjectArchived, ProjectCreated, ProjectUpdated
from contracts.events.licensing import PolicyChanged, ScanRelicensed
from contracts.events.releases import ReleaseDecided, ReleasePromoted
from contracts.events.scans import (
    FindingCreated,
    FindingResolved,
    FindingTriaged,
    ScanCancelled,
    ScanCompleted,
    ScanDeleted,
    ScanFailed,
    ScanQueued,
    ScanRematched,
    ScanStarted,
)
from contracts.events.vulndb import VulnDbUpdated
from services.release_decision.decisions import store
from services.release_decision.decisions.artifacts import ARTIFACT_EVENTS, apply_artifact_event
from services.release_decision.decisions.recorder import decide, decided_commits
from services.release_decision.decisions.result_blob import decode_findings, decode_rematch
from services.release_decision.repos import keyed
from shared import jobs
from shared.blobs import BlobStore
from shared.errors import PermanentEventError

SUBJECTS = (
    "artifact.>",
    "repository.deleted",
    "project.>",
    "scan.>",
    "finding.>",
    "policy.changed",
    "commit.>",
    "release.promoted",
    "release.decided",
    "vulndb.updated",
)
GONE_REASONS = frozenset({"advisory_withdrawn", "no_longer_in_range"})


@dataclass(eq=False)
class DecisionsProjection:
    blobs: BlobStore
    name: str = "decisions"
    schema: str = store.SCHEMA
    subjects: Sequence[str] | None = SUBJECTS
    tables: Sequence[str] = field(default=store.PROJECTION_TABLES)

    async def apply(self, conn: asyncpg.Connection, events: Sequence[Event]) -> None:
        for event in events:
            await self._apply(conn, event)

    async def _apply(self, conn: asyncpg.Connection, event: Event) -> None:
        payload = keyed(event.payload)
        event = msgspec.structs.replace(event, payload=payload)
        if isinstance(payload, ProjectCreated | ProjectUpdated | ProjectArchived):
            await self._project(conn, event)
        elif isinstance(
            payload,
            ScanQueued | ScanStarted | ScanCompleted | ScanFailed | ScanCancelled | ScanDeleted,
        ):
            await self._scan(conn, event)
        elif isinstance(payload, ScanRelicensed):
            if payload.result_digest is not None and not payload.given_up:
                await conn.execute(
                    "UPDATE release_decision.scans SET forbidden_license_count = $2 "
                    "WHERE scan_id = $1",
                    payload.scan_id,
                    payload.forbidden_license_count,
                )
                await self._decide_scan(conn, payload.scan_id, event)
        elif isinstance(payload, FindingTriaged | FindingCreated | FindingResolved):
            await self._finding(conn, event)
        elif isinstance(payload, CommitVerified):
            await self._verified(conn, event, payload)
        elif isinstance(payload, CommitPushed):
            if payload.head:
                await conn.execute(
                    "INSERT INTO release_decision.heads (repo, branch, commit, pushed_at, seq) "
                    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (repo, branch) DO UPDATE SET "
                    "commit = EXCLUDED.commit, pushed_at = EXCLUDED.pushed_at, seq = EXCLUDED.seq",
                    payload.repo,
                    payload.branch,
                    payload.commit,
                    payload.pushed_at,
                    event.sequence,
                )
        elif isinstance(payload, PolicyChanged):
            if payload.kind == "release":
                await self._policy(conn, event, payload)
        elif isinstance(payload, ReleasePromoted):
            await self._promoted(conn, event, payload)
        elif isinstance(payload, ScanRematched):
            await self._rematched(conn, event, payload)
        elif isinstance(payload, VulnDbUpdated):
            await self._vulndb_updated(conn, event, payload)
        elif isinstance(payload, ReleaseDecided):
            await jobs.finish(conn, store.JOBS_TABLE, event.id, sequence=event.sequence)
        elif isinstance(payload, ARTIFACT_EVENTS):
            for repo, commit in await apply_artifact_event(conn, event):
                await decide(conn, repo, commit, event)

    # ---- projects -------------------------------------------------------------------------
    async def _project(self, conn: asyncpg.Connection, event: Event) -> None:
        payload = event.payload
        if isinstance(payload, ProjectCreated):
            await conn.execute(
                "INSERT INTO release_decision.projects (id, slug, name, repos, default_branch, "
                "badge, created_seq, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
                "ON CONFLICT (id) DO NOTHING",
                payload.project_id,
                payload.slug,
                payload.name,
                list(payload.repos),
                payload.default_branch,
                payload.badge,
                event.sequence,
                event.envelope.occurred_at,
            )
            repos = list(payload.repos)
        elif isinstance(payload, ProjectUpdated):
            before = await conn.fetchval(
                "SELECT repos FROM release_decision.projects WHERE id = $1", payload.project_id
            )
            if before is None:
                return
            changes: dict[str, object] = {}
            for name in ("name", "default_branch", "badge", "repos"):
                value = getattr(payload, name)
                if value is not msgspec.UNSET:
                    changes[name] = list(value) if name == "repos" else value
            if changes:
                columns = ", ".join(f"{name} = ${i + 2}" for i, name in enumerate(changes))
                await conn.execute(
                    f"UPDATE release_decision.projects SET {columns} WHERE id = $1",
                    payload.project_id,
                    *changes.values(),
                )
            if "repos" not in changes:
                return
            repos = sorted(set(before) | set(payload.repos or []))  # type: ignore[arg-type]
        else:
            assert isinstance(payload, ProjectArchived)
            await conn.execute(
                "UPDATE release_decision.projects SET archived = true WHERE id = $1",
                payload.project_id,
            )
            return
        # Which project (and so which policy) a commit falls under may have changed.
        for repo, commit in await decided_commits(conn, repos=repos):
            await decide(conn, repo, commit, event)

    # ---- scans ----------------------------------------------------------------------------
    async def _scan(self, conn: asyncpg.Connection, event: Event) -> None:
        payload = event.payload
        at = event.envelope.occurred_at
        if isinstance(payload, ScanQueued):
            commit_scan = payload.repo is not None and payload.commit is not None
            if not commit_scan and payload.artifact_id is None:
                return  # not evidence for any commit, nor for a registry artifact
            await store.insert_scan(
                conn,
                scan_id=payload.scan_id,
                project_id=payload.project_id,
                repo=payload.repo if commit_scan else None,
                commit=payload.commit.lower() if commit_scan and payload.commit else None,
                label=payload.label,
                seq=event.sequence,
                at=at,
                artifact_id=payload.artifact_id,
            )
            await self._decide_scan(conn, payload.scan_id, event)
            return
        key = await store.scan_key(conn, payload.scan_id)  # type: ignore[attr-defined]
        if key is None:
            return
        scan_id: str = payload.scan_id  # type: ignore[attr-defined]
        if isinstance(payload, ScanStarted):
            # Queued and running are both pending: the decision cannot change.
            await store.set_status(conn, scan_id, "running", at=at, only_from=("queued",))
            return
        if isinstance(payload, ScanCompleted):
            changed = await store.complete_scan(
                conn,
                scan_id,
                sbom_digest=payload.sbom_digest,
                result_digest=payload.result_digest,
                forbidden_license_count=payload.forbidden_license_count,
                vulndb_version=payload.vulndb_version,
                vulndb_advisories=payload.vulndb_advisories,
                seq=event.sequence,
                at=at,
            )
            if not changed:
                return
            await self._load_findings(conn, scan_id, payload.result_digest)
        elif isinstance(payload, ScanFailed | ScanCancelled):
            status = "failed" if isinstance(payload, ScanFailed) else "cancelled"
            if not await store.set_status(
                conn, scan_id, status, at=at, only_from=("queued", "running")
            ):
                return
        elif isinstance(payload, ScanDeleted):
            if not await store.set_status(
                conn, scan_id, "deleted", at=at, only_from=("succeeded", "failed", "cancelled")
            ):
                return
            await conn.execute("DELETE FROM release_decision.findings WHERE scan_id = $1", scan_id)
        if key[0] is not None and key[1] is not None:
            await decide(conn, key[0], key[1], event)

    async def _load_findings(self, conn: asyncpg.Connection, scan_id: str, digest: str) -> None:
        try:
            result = decode_findings(await self.blobs.get(digest))
        except msgspec.DecodeError as exc:
            raise PermanentEventError(f"result blob {digest} does not decode: {exc}") from exc
        await store.insert_findings(
            conn,
            scan_id,
            [
                (
                    f.id,
                    f.package,
                    f.vulnerability_id,
                    f.severity,
                    f.epss,
                    f.state,
                    f.match == "affected",
                )
                for f in result.findings
            ],
        )

    async def _decide_scan(self, conn: asyncpg.Connection, scan_id: str, event: Event) -> None:
        key = await store.scan_key(conn, scan_id)
        if key is not None and key[0] is not None and key[1] is not None:
            await decide(conn, key[0], key[1], event)

    # ---- the vulnerability database -------------------------------------------------------
    async def _vulndb_updated(
        self, conn: asyncpg.Connection, event: Event, payload: VulnDbUpdated
    ) -> None:
        """An OSV import is the database every decision names from now on, and its time is
        the one ``max_vulndb_age_hours`` counts from: every decided commit again (an EPSS
        import changes neither; its scores reach findings through re-matches)."""
        if payload.source != "osv":
            return
        inserted = await conn.fetchval(
            "INSERT INTO release_decision.vulndb_imports (seq, import_id, digest, imported_at) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (seq) DO NOTHING RETURNING true",
            event.sequence,
            payload.import_id,
            payload.digest,
            event.envelope.occurred_at,
        )
        if not inserted:
            return
        for repo, commit in await decided_commits(conn):
            await decide(conn, repo, commit, event)

    async def _rematched(
        self, conn: asyncpg.Connection, event: Event, payload: ScanRematched
    ) -> None:
        """The scan was matched again (its ``finding.*`` changes came before): it now names
        the database of the re-match, and findings it rated again take their new severity."""
        rerated = False
        if payload.rerated and payload.result_digest is not None:
            try:
                blob = decode_rematch(await self.blobs.get(payload.result_digest))
            except msgspec.DecodeError as exc:
                raise PermanentEventError(
                    f"re-match blob {payload.result_digest} does not decode: {exc}"
                ) from exc
            for finding in blob.rerated:
                rerated |= bool(
                    await conn.fetchval(
                        "UPDATE release_decision.findings SET severity = $3 "
                        "WHERE finding_id = $1 AND scan_id = $2 RETURNING true",
                        finding.id,
                        payload.scan_id,
                        finding.severity,
                    )
                )
        updated = await conn.fetchval(
            "UPDATE release_decision.scans SET vulndb_version = $2, vulndb_advisories = $3 "
            "WHERE scan_id = $1 AND vulndb_version < $2 RETURNING true",
            payload.scan_id,
            payload.vulndb_version,
            payload.vulndb_advisories,
        )
        if updated or rerated:
            await self._decide_scan(conn, payload.scan_id, event)

    # ---- findings -------------------------------------------------------------------------
    async def _finding(self, conn: asyncpg.Connection, event: Event) -> None:
        payload = event.payload
        if isinstance(payload, FindingTriaged):
            updated = await conn.fetchval(
                "UPDATE release_decision.findings SET state = $2 WHERE finding_id = $1 "
                "RETURNING scan_id",
                payload.finding_id,
                payload.to_state,
            )
            if updated is not None:
                await self._decide_scan(conn, str(updated), event)
        elif isinstance(payload, FindingCreated):
            # cause scan: already read from the result blob of scan.completed.
            if payload.cause != "rematch" or await store.scan_key(conn, payload.scan_id) is None:
                return
            await store.upsert_finding(
                conn,
                payload.scan_id,
                (
                    payload.finding_id,
                    payload.package,
                    payload.vulnerability_id,
                    payload.severity,
                    payload.epss,
                    payload.state,
                    True,
                ),
            )
            await self._decide_scan(conn, payload.scan_id, event)
        elif isinstance(payload, FindingResolved):
            gone = payload.reason in GONE_REASONS
            scan_id = await conn.fetchval(
                "UPDATE release_decision.findings SET resolved_reason = $2, gone = gone OR $3 "
                "WHERE finding_id = $1 RETURNING scan_id",
                payload.finding_id,
                payload.reason,
                gone,
            )
            if scan_id is not None and gone:
                await self._decide_scan(conn, str(scan_id), event)

    # ---- signatures, policy, promotions ---------------------------------------------------
    async def _verified(
        self, conn: asyncpg.Connection, event: Event, payload: CommitVerified
    ) -> None:
        commit = payload.commit.lower()
        await conn.execute(
            "INSERT INTO release_decision.signatures (repo, commit, event_id, verified, reason, "
            "key_id, signer, verified_at, seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
            "ON CONFLICT (repo, commit) DO UPDATE SET event_id = EXCLUDED.event_id, "
            "verified = EXCLUDED.verified, reason = EXCLUDED.reason, key_id = EXCLUDED.key_id, "
            "signer = EXCLUDED.signer, verified_at = EXCLUDED.verified_at, seq = EXCLUDED.seq",
            payload.repo,
            commit,
            event.id,
            payload.verified,
            payload.reason,
            payload.key_id,
            payload.signer,
            payload.verified_at,
            event.sequence,
        )
        await decide(conn, payload.repo, commit, event)

    async def _policy(self, conn: asyncpg.Connection, event: Event, payload: PolicyChanged) -> None:
        scope = store.ORG_SCOPE if payload.scope == "org" else payload.project_id
        if scope is None:
            raise PermanentEventError("a project policy.changed without project_id")
        applied = await conn.fetchval(
            "INSERT INTO release_decision.policies (scope, project_id, version, document, "
            "updated_at, updated_by, seq) VALUES ($1, $2, $3, $4, $5, $6, $7) "
            "ON CONFLICT (scope) DO UPDATE SET version = EXCLUDED.version, "
            "document = EXCLUDED.document, updated_at = EXCLUDED.updated_at, "
            "updated_by = EXCLUDED.updated_by, seq = EXCLUDED.seq "
            "WHERE release_decision.policies.version < EXCLUDED.version RETURNING true",
            scope,
            payload.project_id if payload.scope == "project" else None,
            payload.version,
            msgspec.to_builtins(payload.release_document)
            if payload.release_document is not None
            else None,
            event.envelope.occurred_at,
            event.envelope.actor,
            event.sequence,
        )
        if not applied:
            return
        project = payload.project_id if payload.scope == "project" else None
        for repo, commit in await decided_commits(conn, project_id=project):
            await decide(conn, repo, commit, event)

    async def _promoted(
        self, conn: asyncpg.Connection, event: Event, payload: ReleasePromoted
    ) -> None:
        await conn.execute(
            "INSERT INTO release_decision.promotions (id, snapshot_id, project_id, repo, commit, "
            "target_status, release_label, metadata, decision, blockers, policy_version, "
            "override, promoted_by, promoted_at, seq) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) "
            "ON CONFLICT DO NOTHING",
            payload.promotion_id,
            payload.snapshot_id,
            payload.project_id,
            payload.repo,
            payload.commit,
            payload.target_status,
            payload.release_label,
            payload.metadata,
            payload.decision,
            [msgspec.to_builtins(b) for b in payload.blockers],
            payload.policy_version,
            msgspec.to_builtins(payload.override) if payload.override else None,
            payload.promoted_by,
            payload.promoted_at,
            event.sequence,
        )
