"""The vulnerability database's tables (schema ``scanner``): asyncpg reads and bulk writes.

Bulk writes go through ``COPY`` into a temporary table and one ``INSERT … SELECT``: an
import of 100k advisories is a handful of statements, not 100k round trips.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterable, Sequence

import asyncpg
import msgspec

from contracts.events.vulndb import ImportCounts, PackageRef, VulnDbUpdated
from contracts.rpc.scanner_vulndb import EpssStatus, ImportRecord
from services.scanner.vulndb.bundle import Held
from services.scanner.vulndb.epss import EpssRow
from services.scanner.vulndb.epss_table import EpssRows
from services.scanner.vulndb.rows import AdvisoryRow, alias_groups

SCHEMA = "scanner"
PROJECTION = "vulndb"
TABLES = (
    "advisories",
    "advisory_packages",
    "advisory_aliases",
    "alias_groups",
    "epss",
    "vulndb_imports",
)
_T = f'"{SCHEMA}"'


# ---- reads for imports ----------------------------------------------------------------------


async def held_advisories(conn: asyncpg.Connection, ids: Sequence[str]) -> dict[str, Held]:
    rows = await conn.fetch(
        f"SELECT id, modified, withdrawn IS NOT NULL AS withdrawn FROM {_T}.advisories "
        "WHERE id = ANY($1::text[])",
        list(ids),
    )
    return {r["id"]: Held(r["modified"], r["withdrawn"]) for r in rows}


async def packages_of(conn: asyncpg.Connection, advisory_ids: Iterable[str]) -> set[PackageRef]:
    rows = await conn.fetch(
        f"SELECT DISTINCT ecosystem, package_key FROM {_T}.advisory_packages "
        "WHERE advisory_id = ANY($1::text[])",
        list(advisory_ids),
    )
    return {PackageRef(ecosystem=r["ecosystem"], package=r["package_key"]) for r in rows}


async def group_mates(conn: asyncpg.Connection, members: Iterable[str]) -> list[str]:
    """Every member of the alias groups ``members`` belong to today."""
    rows = await conn.fetch(
        f"SELECT member FROM {_T}.alias_groups WHERE group_id IN "
        f"(SELECT group_id FROM {_T}.alias_groups WHERE member = ANY($1::text[]))",
        list(members),
    )
    return [r["member"] for r in rows]


async def held_epss(
    conn: asyncpg.Connection, cves: Sequence[str]
) -> dict[str, tuple[float, float, dt.date]]:
    rows = await conn.fetch(
        f"SELECT cve, score, percentile, as_of FROM {_T}.epss WHERE cve = ANY($1::text[])",
        list(cves),
    )
    return {r["cve"]: (r["score"], r["percentile"], r["as_of"]) for r in rows}


# ---- projection writes ----------------------------------------------------------------------


async def upsert_advisories(
    conn: asyncpg.Connection, rows: Sequence[AdvisoryRow], *, import_id: str, sequence: int
) -> None:
    """Write changed advisories with their package index rows, alias edges and groups."""
    if not rows:
        return
    ids = [row.id for row in rows]
    old_aliases = await conn.fetch(
        f"SELECT alias FROM {_T}.advisory_aliases WHERE advisory_id = ANY($1::text[])", ids
    )
    await conn.execute("CREATE TEMP TABLE vulndb_incoming (LIKE scanner.advisories) ON COMMIT DROP")
    await conn.copy_records_to_table(
        "vulndb_incoming",
        records=(
            (
                r.id,
                r.modified,
                r.published,
                r.withdrawn,
                list(r.ecosystems),
                list(r.aliases),
                r.severity,
                r.cvss_score,
                r.severity_source,
                r.severity_vector,
                r.summary,
                r.document,
                import_id,
                sequence,
            )
            for r in rows
        ),
    )
    columns = (
        "modified, published, withdrawn, ecosystems, aliases, severity, cvss_score, "
        "severity_source, severity_vector, summary, document, import_id, sequence"
    )
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns.split(", "))
    # Newer `modified` wins: the guard keeps a stale copy out whatever the caller checked.
    await conn.execute(
        f"INSERT INTO {_T}.advisories SELECT * FROM vulndb_incoming "
        f"ON CONFLICT (id) DO UPDATE SET {updates} "
        "WHERE advisories.modified < EXCLUDED.modified"
    )
    await conn.execute("DROP TABLE vulndb_incoming")
    await conn.execute(
        f"DELETE FROM {_T}.advisory_packages WHERE advisory_id = ANY($1::text[])", ids
    )
    await conn.copy_records_to_table(
        "advisory_packages",
        schema_name=SCHEMA,
        records=((eco, key, r.id) for r in rows for eco, key in r.packages),
    )
    await conn.execute(
        f"DELETE FROM {_T}.advisory_aliases WHERE advisory_id = ANY($1::text[])", ids
    )
    await conn.copy_records_to_table(
        "advisory_aliases",
        schema_name=SCHEMA,
        records=((r.id, alias) for r in rows if r.active for alias in r.aliases),
    )
    seeds = set(ids) | {r["alias"] for r in old_aliases}
    seeds.update(alias for r in rows for alias in r.aliases)
    await regroup(conn, seeds)


async def regroup(conn: asyncpg.Connection, seeds: set[str]) -> None:
    """Recompute the alias groups that ``seeds`` belonged to or belong to now.

    The nodes to regroup are the seeds, their old group mates, and everything the current
    edges reach from them (a breadth-first walk, one query per step)."""
    visited = set(seeds) | set(await group_mates(conn, seeds))
    frontier = list(visited)
    edges: set[tuple[str, str]] = set()
    while frontier:
        found = await conn.fetch(
            f"SELECT advisory_id, alias FROM {_T}.advisory_aliases "
            "WHERE advisory_id = ANY($1::text[]) OR alias = ANY($1::text[])",
            frontier,
        )
        frontier = []
        for record in found:
            edge = (record["advisory_id"], record["alias"])
            if edge in edges:
                continue
            edges.add(edge)
            for node in edge:
                if node not in visited:
                    visited.add(node)
                    frontier.append(node)
    active = await conn.fetch(
        f"SELECT id FROM {_T}.advisories WHERE id = ANY($1::text[]) AND withdrawn IS NULL",
        list(visited),
    )
    groups = alias_groups((r["id"] for r in active), sorted(edges))
    await conn.execute(
        f"DELETE FROM {_T}.alias_groups WHERE member = ANY($1::text[])", list(visited)
    )
    await conn.copy_records_to_table(
        "alias_groups", schema_name=SCHEMA, records=sorted(groups.items())
    )


async def upsert_epss(
    conn: asyncpg.Connection,
    rows: Sequence[EpssRow],
    *,
    as_of: dt.date,
    import_id: str,
    sequence: int,
) -> None:
    """Scores from a file dated ``as_of`` replace those of the same or an older date."""
    await conn.execute(
        "CREATE TEMP TABLE epss_incoming (cve text, score double precision, "
        "percentile double precision) ON COMMIT DROP"
    )
    await conn.copy_records_to_table(
        "epss_incoming", records=((r.cve, r.score, r.percentile) for r in rows)
    )
    await conn.execute(
        f"INSERT INTO {_T}.epss (cve, score, percentile, as_of, import_id, sequence) "
        "SELECT cve, score, percentile, $1, $2, $3 FROM epss_incoming "
        "ON CONFLICT (cve) DO UPDATE SET score = EXCLUDED.score, "
        "percentile = EXCLUDED.percentile, as_of = EXCLUDED.as_of, "
        "import_id = EXCLUDED.import_id, sequence = EXCLUDED.sequence "
        "WHERE epss.as_of <= EXCLUDED.as_of AND (epss.score, epss.percentile, epss.as_of) "
        "IS DISTINCT FROM (EXCLUDED.score, EXCLUDED.percentile, EXCLUDED.as_of)",
        as_of,
        import_id,
        sequence,
    )
    await conn.execute("DROP TABLE epss_incoming")


async def record_import(
    conn: asyncpg.Connection,
    payload: VulnDbUpdated,
    *,
    sequence: int,
    occurred_at: dt.datetime,
    actor: str,
) -> bool:
    """Record an import; False when this import id is recorded already (a re-publish)."""
    inserted = await conn.fetchval(
        f"INSERT INTO {_T}.vulndb_imports (import_id, sequence, source, occurred_at, actor, "
        "digest, format, name, counts, counts_by_ecosystem, rejected, rematch_all, "
        "epss_as_of, epss_model_version) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::jsonb, $10::text::jsonb, "
        "$11::text::jsonb, $12, $13, $14) ON CONFLICT (import_id) DO NOTHING RETURNING 1",
        payload.import_id,
        sequence,
        payload.source,
        occurred_at,
        actor,
        payload.digest,
        payload.format,
        payload.name,
        msgspec.json.encode(payload.counts).decode(),
        msgspec.json.encode(payload.counts_by_ecosystem).decode(),
        msgspec.json.encode(payload.rejected).decode(),
        payload.rematch_all,
        payload.epss_as_of,
        payload.epss_model_version,
    )
    return inserted is not None


# ---- queries --------------------------------------------------------------------------------


async def advisory_counts(conn: asyncpg.Connection) -> tuple[int, int, dict[str, int]]:
    """(active, withdrawn, active per ecosystem)."""
    totals = await conn.fetchrow(
        f"SELECT count(*) FILTER (WHERE withdrawn IS NULL) AS active, "
        f"count(*) FILTER (WHERE withdrawn IS NOT NULL) AS withdrawn FROM {_T}.advisories"
    )
    per = await conn.fetch(
        f"SELECT e AS ecosystem, count(*) AS n FROM {_T}.advisories, unnest(ecosystems) e "
        "WHERE withdrawn IS NULL GROUP BY e ORDER BY e"
    )
    return int(totals["active"]), int(totals["withdrawn"]), {r["ecosystem"]: r["n"] for r in per}


def _import_record(row: asyncpg.Record) -> ImportRecord:
    return ImportRecord(
        import_id=row["import_id"],
        sequence=row["sequence"],
        source=row["source"],
        at=row["occurred_at"],
        actor=row["actor"],
        digest=row["digest"],
        format=row["format"],
        name=row["name"],
        counts=msgspec.convert(row["counts"], ImportCounts),
        epss_as_of=row["epss_as_of"],
    )


async def last_import(conn: asyncpg.Connection, source: str) -> ImportRecord | None:
    row = await conn.fetchrow(
        f"SELECT * FROM {_T}.vulndb_imports WHERE source = $1 ORDER BY sequence DESC LIMIT 1",
        source,
    )
    return _import_record(row) if row else None


async def epss_status(conn: asyncpg.Connection) -> EpssStatus:
    count = await conn.fetchval(f"SELECT count(*) FROM {_T}.epss")
    newest = await conn.fetchrow(
        f"SELECT epss_as_of, epss_model_version FROM {_T}.vulndb_imports "
        "WHERE source = 'epss' ORDER BY epss_as_of DESC, sequence DESC LIMIT 1"
    )
    return EpssStatus(
        count=int(count),
        as_of=newest["epss_as_of"] if newest else None,
        model_version=newest["epss_model_version"] if newest else None,
    )


async def checkpoint(conn: asyncpg.Connection) -> int:
    value = await conn.fetchval(
        f"SELECT stream_sequence FROM {_T}.projection_checkpoint WHERE projection = $1",
        PROJECTION,
    )
    return int(value or 0)


async def find_advisory(conn: asyncpg.Connection, ref: str) -> asyncpg.Record | None:
    """The advisory with id ``ref``, else the lowest-id active advisory of ``ref``'s alias
    group (``ref`` being an alias such as a CVE id)."""
    row = await conn.fetchrow(f"SELECT * FROM {_T}.advisories WHERE id = $1", ref)
    if row is not None:
        return row
    return await conn.fetchrow(
        f"SELECT a.* FROM {_T}.alias_groups g JOIN {_T}.alias_groups m "
        f"ON m.group_id = g.group_id JOIN {_T}.advisories a ON a.id = m.member "
        "WHERE g.member = $1 AND a.withdrawn IS NULL ORDER BY a.id LIMIT 1",
        ref,
    )


async def group_of(conn: asyncpg.Connection, advisory_id: str) -> tuple[str, list[str], list[str]]:
    """(group id, every member, the members that are held advisories) of ``advisory_id``."""
    group_id = await conn.fetchval(
        f"SELECT group_id FROM {_T}.alias_groups WHERE member = $1", advisory_id
    )
    if group_id is None:
        return advisory_id, [advisory_id], [advisory_id]
    rows = await conn.fetch(
        f"SELECT m.member, a.id IS NOT NULL AS held FROM {_T}.alias_groups m "
        f"LEFT JOIN {_T}.advisories a ON a.id = m.member "
        "WHERE m.group_id = $1 ORDER BY m.member",
        group_id,
    )
    return group_id, [r["member"] for r in rows], [r["member"] for r in rows if r["held"]]


async def epss_of(
    conn: asyncpg.Connection, cves: Sequence[str]
) -> list[tuple[str, float, float, dt.date]]:
    rows = await conn.fetch(
        f"SELECT cve, score, percentile, as_of FROM {_T}.epss WHERE cve = ANY($1::text[]) "
        "ORDER BY cve",
        list(cves),
    )
    return [(r["cve"], r["score"], r["percentile"], r["as_of"]) for r in rows]


async def package_refs(conn: asyncpg.Connection, advisory_id: str) -> list[PackageRef]:
    rows = await conn.fetch(
        f"SELECT ecosystem, package_key FROM {_T}.advisory_packages WHERE advisory_id = $1 "
        "ORDER BY ecosystem, package_key",
        advisory_id,
    )
    return [PackageRef(ecosystem=r["ecosystem"], package=r["package_key"]) for r in rows]


# ---- the in-memory matcher follows the tables -----------------------------------------------


async def documents_since(
    conn: asyncpg.Connection, after: int, *, chunk: int = 2000
) -> AsyncIterator[list[bytes]]:
    """Documents of advisories changed by imports after stream sequence ``after``, in chunks
    (call inside a transaction: the cursor needs one)."""
    batch: list[bytes] = []
    query = f"SELECT document FROM {_T}.advisories WHERE sequence > $1 ORDER BY sequence, id"
    async for record in conn.cursor(query, after, prefetch=chunk):
        batch.append(record["document"])
        if len(batch) >= chunk:
            yield batch
            batch = []
    if batch:
        yield batch


async def epss_since(conn: asyncpg.Connection, after: int) -> tuple[EpssRows, dt.date | None]:
    """Scores changed by imports after stream sequence ``after``, packed in CVE order, and
    the newest as-of date among them (call inside a transaction: the cursor needs one)."""
    rows = EpssRows()
    newest: dt.date | None = None
    query = (
        f"SELECT cve, score, percentile, as_of FROM {_T}.epss WHERE sequence > $1 "
        "ORDER BY split_part(cve, '-', 2)::int, split_part(cve, '-', 3)::bigint"
    )
    async for record in conn.cursor(query, after, prefetch=5000):
        rows.append(record["cve"], record["score"], record["percentile"])
        if newest is None or record["as_of"] > newest:
            newest = record["as_of"]
    return rows, newest
