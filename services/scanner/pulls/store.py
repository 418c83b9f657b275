"""The who-pulled read model: one row per ``download.recorded`` and, per artifact, how often
and when last it was downloaded. Written by the ``registry_pulls`` projection in batches
(a busy index sees many downloads a second), read by ``who_pulled``, ``artifact_get`` and
retention's ``keep_pulled_days``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TypeAlias

import asyncpg
import msgspec

from contracts.rpc.pulls import Pull
from contracts.rpc.registry import Artifact
from services.scanner.registry.domain import PackageRef, purl_ref

Queryable: TypeAlias = asyncpg.Pool | asyncpg.Connection

PROJECTION_TABLES = ("registry_pulls", "registry_pull_stats")
_PULLS = "scanner.registry_pulls"
_STATS = "scanner.registry_pull_stats"


class PullRow(msgspec.Struct, frozen=True, kw_only=True):
    """A download as the projection stores it (from the event and its envelope)."""

    seq: int
    event_id: str
    artifact_id: str
    repo_id: str
    project_id: str
    digest: str
    purl: str | None
    principal: str
    address: str
    at: dt.datetime

    @property
    def package(self) -> PackageRef | None:
        return purl_ref(self.purl) if self.purl else None


async def insert_pulls(conn: asyncpg.Connection, rows: Sequence[PullRow]) -> None:
    """Record a batch of downloads in one statement each for the pulls and their counts."""
    if not rows:
        return
    packages = [row.package for row in rows]
    await conn.execute(
        f"INSERT INTO {_PULLS} (seq, event_id, artifact_id, repo_id, project_id, digest, purl, "
        "purl_key, purl_version, principal, address, at) SELECT * FROM unnest($1::bigint[], "
        "$2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], "
        "$9::text[], $10::text[], $11::text[], $12::timestamptz[]) ON CONFLICT DO NOTHING",
        [r.seq for r in rows],
        [r.event_id for r in rows],
        [r.artifact_id for r in rows],
        [r.repo_id for r in rows],
        [r.project_id for r in rows],
        [r.digest for r in rows],
        [r.purl for r in rows],
        [p.key if p else None for p in packages],
        [p.version if p else None for p in packages],
        [r.principal for r in rows],
        [r.address for r in rows],
        [r.at for r in rows],
    )
    counts: dict[str, tuple[int, dt.datetime]] = {}
    for row in rows:
        count, last = counts.get(row.artifact_id, (0, row.at))
        counts[row.artifact_id] = (count + 1, max(last, row.at))
    ids = sorted(counts)  # one order for every writer: no deadlock between batches
    await conn.execute(
        f"INSERT INTO {_STATS} (artifact_id, pull_count, last_pulled_at) "
        "SELECT * FROM unnest($1::text[], $2::bigint[], $3::timestamptz[]) "
        "ON CONFLICT (artifact_id) DO UPDATE SET "
        f"pull_count = {_STATS}.pull_count + excluded.pull_count, "
        f"last_pulled_at = greatest({_STATS}.last_pulled_at, excluded.last_pulled_at)",
        ids,
        [counts[i][0] for i in ids],
        [counts[i][1] for i in ids],
    )


# ---- reads ------------------------------------------------------------------------------------
async def who_pulled(
    db: Queryable,
    *,
    digest: str | None,
    package: PackageRef | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
    project_ids: Sequence[str] | None,
    before_seq: int | None,
    limit: int,
) -> list[tuple[Pull, int]]:
    """(pull, seq) newest first, by digest or by package (and version, when the purl names
    one). Each lookup names the leading columns of its own index, so it reads only its
    rows, newest first, and stops at ``limit``."""
    conditions: list[str] = []
    args: list[object] = []

    def where(sql: str, value: object) -> None:
        args.append(value)
        conditions.append(sql.format(f"${len(args)}"))

    if digest is not None:
        where("digest = {}", digest)
    elif package is not None:
        where("purl_key = {}", package.key)
        if package.version is not None:
            where("purl_version = {}", package.version)
    else:
        raise ValueError("a digest or a package")
    if since is not None:
        where("at >= {}", since)
    if until is not None:
        where("at < {}", until)
    if project_ids is not None:
        where("project_id = ANY({}::text[])", list(project_ids))
    if before_seq is not None:
        where("seq < {}", before_seq)
    args.append(limit)
    rows = await db.fetch(
        "SELECT seq, artifact_id, repo_id, project_id, digest, purl, principal, address, at "
        f"FROM {_PULLS} WHERE {' AND '.join(conditions)} ORDER BY seq DESC LIMIT ${len(args)}",
        *args,
    )
    found = []
    for row in rows:
        fields = dict(row)
        seq = int(fields.pop("seq"))
        found.append((Pull(**fields), seq))
    return found


async def with_pulls(db: Queryable, artifacts: Sequence[Artifact]) -> list[Artifact]:
    """``artifacts`` with their download count and newest download filled in."""
    if not artifacts:
        return []
    rows = await db.fetch(
        f"SELECT artifact_id, pull_count, last_pulled_at FROM {_STATS} "
        "WHERE artifact_id = ANY($1::text[])",
        [a.id for a in artifacts],
    )
    stats = {row["artifact_id"]: (int(row["pull_count"]), row["last_pulled_at"]) for row in rows}
    return [
        msgspec.structs.replace(a, pull_count=stats[a.id][0], last_pulled_at=stats[a.id][1])
        if a.id in stats
        else a
        for a in artifacts
    ]
