"""What triage reads from the scans read model (it writes nothing: ``finding.triaged`` is
applied by the scans projection), and the advisory locks that serialise triage.

Locks (session advisory locks, released together): a triage of one or more findings holds
the project's key *shared* and each finding's key exclusively, in sorted order (no
deadlocks between two bulk requests); a VEX import holds the project's key *exclusively*,
so it never interleaves with a PATCH or a bulk transition of the same project. Each lock is
held until the projection has applied the events it led to, so the next holder reads the
finding as it now is.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TypeAlias

import asyncpg
import msgspec

from contracts.events.scans import VexState
from services.scanner.domain.findings import Finding
from services.scanner.domain.vex import TriageState
from services.scanner.scans import store as scans_store
from shared.db import advisory_key
from shared.errors import Conflict

Queryable: TypeAlias = asyncpg.Pool | asyncpg.Connection


class TriageBusy(Conflict):
    code, title = "triage_busy", "The finding is being triaged by another request"
    transient = True


class TriageRow(msgspec.Struct, frozen=True, kw_only=True):
    """A finding as triage needs it: where it is and its current triage state."""

    id: str
    project_id: str
    scan_id: str
    package: str  # <ecosystem>:<normalised name>, as the triage memory keys it
    vulnerability_id: str
    state: VexState
    justification: str | None
    detail: str
    version: int

    @property
    def triage_state(self) -> TriageState:
        return TriageState(
            state=self.state,
            justification=self.justification,
            detail=self.detail,
            revision=self.version,
        )


_ROW = (
    "f.id, f.project_id, f.scan_id, f.package, f.vulnerability_id, f.state, f.justification, "
    "f.detail, f.version"
)


async def triage_rows(
    db: Queryable, finding_ids: Sequence[str], *, project_id: str | None
) -> dict[str, TriageRow]:
    """The findings among ``finding_ids`` that exist (in a scan not deleted; of
    ``project_id`` when given)."""
    rows = await db.fetch(
        f"SELECT {_ROW} FROM scanner.findings f JOIN scanner.scans s ON s.id = f.scan_id "
        "AND s.deleted_at IS NULL WHERE f.id = ANY($1::text[]) "
        "AND ($2::text IS NULL OR f.project_id = $2)",
        list(finding_ids),
        project_id,
    )
    return {row["id"]: TriageRow(**dict(row)) for row in rows}


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    project_id: str
    label: str | None
    finished_at: dt.datetime


async def latest_snapshot(db: Queryable, project_id: str) -> Snapshot | None:
    row = await db.fetchrow(
        "SELECT id, project_id, label, finished_at FROM scanner.scans WHERE project_id = $1 "
        "AND status = 'succeeded' AND deleted_at IS NULL ORDER BY completed_seq DESC LIMIT 1",
        project_id,
    )
    return Snapshot(**dict(row)) if row else None


async def snapshot(db: Queryable, scan_id: str) -> Snapshot | None:
    row = await db.fetchrow(
        "SELECT id, project_id, label, finished_at FROM scanner.scans WHERE id = $1 "
        "AND status = 'succeeded' AND deleted_at IS NULL",
        scan_id,
    )
    return Snapshot(**dict(row)) if row else None


async def current_finding_id(db: Queryable, scan_id: str, row: TriageRow) -> str | None:
    """The finding of snapshot ``scan_id`` with the same package and vulnerability."""
    found = await db.fetchval(
        "SELECT id FROM scanner.findings WHERE scan_id = $1 AND package = $2 "
        "AND vulnerability_id = $3 ORDER BY component_ref LIMIT 1",
        scan_id,
        row.package,
        row.vulnerability_id,
    )
    return str(found) if found is not None else None


async def snapshot_findings(db: Queryable, scan_id: str) -> tuple[list[Finding], dict[str, str]]:
    """The open findings of a snapshot as the VEX functions take them (in id order), and
    each one's ``<ecosystem>:<key>`` package (how finding.triaged and the memory name it)."""
    rows = await db.fetch(
        f"SELECT {', '.join(scans_store.FINDING_COLUMNS)} FROM scanner.findings "
        "WHERE scan_id = $1 AND resolved_at IS NULL ORDER BY id",
        scan_id,
    )
    findings = [scans_store.finding_of(row) for row in rows]
    return findings, {row["id"]: row["package"] for row in rows}


async def export_timestamp(db: Queryable, found: Snapshot) -> dt.datetime:
    """When the snapshot's VEX was last true: its completion, or its latest triage."""
    triaged = await db.fetchval(
        "SELECT max(triaged_at) FROM scanner.findings WHERE scan_id = $1 AND resolved_at IS NULL",
        found.id,
    )
    return max(found.finished_at, triaged) if triaged is not None else found.finished_at


@asynccontextmanager
async def triage_locks(
    pool: asyncpg.Pool,
    project_id: str,
    *,
    finding_ids: Sequence[str] = (),
    whole_project: bool = False,
    timeout: float,  # noqa: ASYNC109 - PostgreSQL's lock_timeout, not a cancel scope
) -> AsyncIterator[asyncpg.Connection]:
    """Hold the triage locks (module docstring); answers 409 ``triage_busy`` (transient)
    when they are not free within ``timeout`` seconds. Yields the connection holding them."""
    async with pool.acquire() as conn:
        await conn.execute(f"SET lock_timeout = '{max(int(timeout * 1000), 1)}ms'")
        try:
            project_key = advisory_key(f"triage-project:{project_id}")
            if whole_project:
                await conn.execute("SELECT pg_advisory_lock($1)", project_key)
            else:
                await conn.execute("SELECT pg_advisory_lock_shared($1)", project_key)
            for finding_id in sorted(finding_ids):
                await conn.execute(
                    "SELECT pg_advisory_lock($1)", advisory_key(f"triage-finding:{finding_id}")
                )
        except asyncpg.LockNotAvailableError:
            await conn.execute("SELECT pg_advisory_unlock_all()")
            await conn.execute("RESET lock_timeout")
            raise TriageBusy(
                "another triage of this finding or project is still running; try again",
                extra={"retry": True},
            ) from None
        try:
            yield conn
        finally:
            await conn.execute("SELECT pg_advisory_unlock_all()")
            await conn.execute("RESET lock_timeout")
