"""The registry read model in PostgreSQL: what the registry projection writes and what the
handlers read. Rows become the contract's values here, nowhere else."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TypeAlias

import asyncpg
import msgspec

from contracts.events.registry import (
    ArtifactPromoted,
    ArtifactUploaded,
    BlockCreated,
    BlockUpdated,
    Provenance,
    RepositoryCreated,
    RepositoryUpdated,
)
from contracts.rpc.registry import Artifact, Block, IndexFile, Repository
from services.scanner.registry.domain import (
    ArtifactFacts,
    BlockRule,
    artifact_ref,
    normalize_name,
    purl_ref,
)

Queryable: TypeAlias = asyncpg.Pool | asyncpg.Connection

PROJECTION_TABLES = (
    "registry_repositories",
    "registry_artifacts",
    "registry_blocks",
    "registry_block_changes",
    "registry_advisory_blocks",
    "registry_jobs",
)
JOBS_TABLE = "scanner.registry_jobs"
_REPO = "scanner.registry_repositories"
_ART = "scanner.registry_artifacts"
_BLOCK = "scanner.registry_blocks"

_REPO_COLUMNS = (
    "id, project_id, slug, format, visibility, quarantine_new, description, quota_bytes, "
    "quota_artifacts, used_bytes, artifact_count, created_at, updated_at, revision"
)
ART_COLUMNS = (
    "a.id, a.repo_id, a.project_id, a.format, a.path, a.kind, a.name, a.version, a.purl, "
    "a.digest, a.size, a.metadata_digest, a.requires_python, a.provenance, a.uploaded_by, "
    "a.uploaded_at, a.scan_status, a.quarantined, a.scan_id, a.advisories, a.malicious, "
    "a.source_artifact_id AS promoted_from"
)
_BLOCK_COLUMNS = (
    "id, purl, versions, digest, name_pattern, format, reason, customer_message, "
    "blocked_until, source, advisory_id, created_at, created_by, hits, revision, created_seq"
)


def stored_name(format_: str, name: str | None) -> str | None:
    """The index key of a package name (PEP 503 for pypi, lower-cased otherwise)."""
    if name is None:
        return None
    return normalize_name(name) if format_ == "pypi" else name.strip().lower()


# ---- repositories ---------------------------------------------------------------------------
def repository_of(row: asyncpg.Record) -> Repository:
    return Repository(**dict(row))


async def insert_repository(
    conn: asyncpg.Connection, payload: RepositoryCreated, *, at: dt.datetime, actor: str, seq: int
) -> None:
    await conn.execute(
        f"INSERT INTO {_REPO} (id, project_id, slug, format, visibility, quarantine_new, "
        "description, quota_bytes, quota_artifacts, created_at, created_by, created_seq, "
        "updated_at, revision, artifacts_seq) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $10, $12, $12) "
        "ON CONFLICT DO NOTHING",
        payload.id,
        payload.project_id,
        payload.slug,
        payload.format,
        payload.visibility,
        payload.quarantine_new,
        payload.description,
        payload.quota_bytes,
        payload.quota_artifacts,
        at,
        actor,
        seq,
    )


REPO_PATCHABLE = ("visibility", "quarantine_new", "description", "quota_bytes", "quota_artifacts")


async def _apply_patch(
    conn: asyncpg.Connection,
    table: str,
    payload: RepositoryUpdated | BlockUpdated,
    patchable: tuple[str, ...],
    *,
    at: dt.datetime,
    seq: int,
) -> None:
    """``UPDATE`` the row ``payload.id`` of ``table``: each of ``patchable`` that the event
    sets (UNSET: unchanged), its time and its revision."""
    changes = {
        name: getattr(payload, name)
        for name in patchable
        if getattr(payload, name) is not msgspec.UNSET
    }
    sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(changes, start=4))
    await conn.execute(
        f"UPDATE {table} SET updated_at = $2, revision = $3"
        + (f", {sets}" if sets else "")
        + " WHERE id = $1",
        payload.id,
        at,
        seq,
        *changes.values(),
    )


async def update_repository(
    conn: asyncpg.Connection, payload: RepositoryUpdated, *, at: dt.datetime, seq: int
) -> None:
    await _apply_patch(conn, _REPO, payload, REPO_PATCHABLE, at=at, seq=seq)


async def delete_repository(conn: asyncpg.Connection, repo_id: str) -> None:
    """The repository and every artifact of it, tombstones too: a repository of the same
    slug made later is another repository."""
    await conn.execute(f"DELETE FROM {_ART} WHERE repo_id = $1", repo_id)
    await conn.execute(f"DELETE FROM {_REPO} WHERE id = $1", repo_id)


async def repository_by_id(db: Queryable, repo_id: str) -> Repository | None:
    row = await db.fetchrow(f"SELECT {_REPO_COLUMNS} FROM {_REPO} WHERE id = $1", repo_id)
    return repository_of(row) if row else None


async def repository_by_slug(db: Queryable, project_id: str, slug: str) -> Repository | None:
    row = await db.fetchrow(
        f"SELECT {_REPO_COLUMNS} FROM {_REPO} WHERE project_id = $1 AND slug = $2",
        project_id,
        slug,
    )
    return repository_of(row) if row else None


async def repository_index_state(db: Queryable, repo_id: str) -> tuple[Repository, int] | None:
    """The repository and its index revision: the later of its artifacts' last change and
    the blocks' last change (either changes what the index lists as available)."""
    row = await db.fetchrow(
        f"SELECT {_REPO_COLUMNS}, greatest(artifacts_seq, coalesce("
        "(SELECT seq FROM scanner.registry_block_changes WHERE id = 1), 0)) AS index_revision "
        f"FROM {_REPO} WHERE id = $1",
        repo_id,
    )
    if row is None:
        return None
    fields = dict(row)
    revision = int(fields.pop("index_revision"))
    return Repository(**fields), revision


async def list_repositories(
    db: Queryable,
    *,
    project_ids: Sequence[str] | None,
    slug: str | None,
    after_seq: int | None,
    limit: int,
) -> list[tuple[Repository, int]]:
    """(repository, created_seq) in creation order."""
    rows = await db.fetch(
        f"SELECT {_REPO_COLUMNS}, created_seq FROM {_REPO} "
        "WHERE ($1::text[] IS NULL OR project_id = ANY($1)) AND ($2::text IS NULL OR slug = $2) "
        "AND ($3::bigint IS NULL OR created_seq > $3) ORDER BY created_seq LIMIT $4",
        list(project_ids) if project_ids is not None else None,
        slug,
        after_seq,
        limit,
    )
    found = []
    for row in rows:
        fields = dict(row)
        seq = int(fields.pop("created_seq"))
        found.append((Repository(**fields), seq))
    return found


# ---- artifacts ------------------------------------------------------------------------------
def artifact_of(row: asyncpg.Record) -> Artifact:
    fields = dict(row)
    provenance = fields.pop("provenance")
    return Artifact(
        **fields,
        provenance=msgspec.convert(provenance, Provenance) if provenance is not None else None,
    )


async def artifacts_changed(conn: asyncpg.Connection, repo_id: str, seq: int) -> None:
    await conn.execute(f"UPDATE {_REPO} SET artifacts_seq = $2 WHERE id = $1", repo_id, seq)


async def insert_artifact(
    conn: asyncpg.Connection, payload: ArtifactUploaded, *, at: dt.datetime, seq: int
) -> bool:
    """Record an upload and count it in its repository (nothing for a repeat, nor for a
    repository that was deleted meanwhile); True when it is new."""
    provenance = msgspec.to_builtins(payload.provenance) if payload.provenance else None
    facts = ArtifactFacts(
        format=payload.format,
        digest=payload.digest,
        path=payload.path,
        name=payload.name,
        version=payload.version,
        purl=payload.purl,
    )
    ref = artifact_ref(facts)
    inserted = await conn.fetchval(
        f"INSERT INTO {_ART} (id, repo_id, project_id, format, path, kind, name, "
        "normalized_name, version, purl, digest, size, metadata_digest, requires_python, "
        "sbom_digests, provenance, uploaded_by, uploaded_at, uploaded_seq, quarantined, "
        "purl_key) "
        "SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, "
        f"$18, $19, $20, $21 WHERE EXISTS (SELECT 1 FROM {_REPO} WHERE id = $2) "
        "ON CONFLICT DO NOTHING RETURNING true",
        payload.id,
        payload.repo_id,
        payload.project_id,
        payload.format,
        payload.path,
        payload.kind,
        payload.name,
        stored_name(payload.format, payload.name),
        payload.version,
        payload.purl,
        payload.digest,
        payload.size,
        payload.metadata_digest,
        payload.requires_python,
        list(payload.sbom_digests),
        provenance,
        payload.uploaded_by,
        at,
        seq,
        payload.quarantined,
        ref.key if ref is not None else None,
    )
    if inserted:
        await conn.execute(
            f"UPDATE {_REPO} SET used_bytes = used_bytes + $2, artifact_count = artifact_count "
            "+ 1, artifacts_seq = $3 WHERE id = $1",
            payload.repo_id,
            payload.size,
            seq,
        )
    return bool(inserted)


async def insert_promoted(
    conn: asyncpg.Connection, payload: ArtifactPromoted, *, at: dt.datetime, actor: str, seq: int
) -> None:
    """A promotion's copy: the source's metadata in the target repository, not
    quarantined (it was released where it came from)."""
    inserted = await conn.fetchval(
        f"INSERT INTO {_ART} (id, repo_id, project_id, format, path, kind, name, "
        "normalized_name, version, purl, digest, size, metadata_digest, requires_python, "
        "sbom_digests, provenance, uploaded_by, uploaded_at, uploaded_seq, scan_status, "
        "quarantined, source_artifact_id, purl_key, scan_id, advisories, malicious) "
        "SELECT $1, r.id, r.project_id, s.format, s.path, s.kind, s.name, s.normalized_name, "
        "s.version, s.purl, s.digest, s.size, s.metadata_digest, s.requires_python, "
        "s.sbom_digests, s.provenance, $4, $5, $6, s.scan_status, false, s.id, s.purl_key, "
        "s.scan_id, s.advisories, s.malicious "
        f"FROM {_ART} s JOIN {_REPO} r ON r.id = $3 AND r.format = s.format WHERE s.id = $2 "
        "ON CONFLICT DO NOTHING RETURNING size",
        payload.id,
        payload.source_artifact_id,
        payload.to_repo_id,
        actor,
        at,
        seq,
    )
    if inserted is not None:
        await conn.execute(
            f"UPDATE {_REPO} SET used_bytes = used_bytes + $2, artifact_count = artifact_count "
            "+ 1, artifacts_seq = $3 WHERE id = $1",
            payload.to_repo_id,
            inserted,
            seq,
        )


async def set_scan_status(
    conn: asyncpg.Connection, artifact_id: str, verdict: str, *, seq: int
) -> None:
    repo_id = await conn.fetchval(
        f"UPDATE {_ART} SET scan_status = $2 WHERE id = $1 AND deleted_seq IS NULL "
        "RETURNING repo_id",
        artifact_id,
        verdict,
    )
    if repo_id is not None:
        await artifacts_changed(conn, repo_id, seq)


async def release_artifact(conn: asyncpg.Connection, artifact_id: str, *, seq: int) -> None:
    repo_id = await conn.fetchval(
        f"UPDATE {_ART} SET quarantined = false WHERE id = $1 AND quarantined "
        "AND deleted_seq IS NULL RETURNING repo_id",
        artifact_id,
    )
    if repo_id is not None:
        await artifacts_changed(conn, repo_id, seq)


async def delete_artifact(
    conn: asyncpg.Connection, artifact_id: str, *, reason: str, seq: int
) -> None:
    """Leave a tombstone and uncount the artifact (once)."""
    row = await conn.fetchrow(
        f"UPDATE {_ART} SET deleted_seq = $2, deleted_reason = $3 "
        "WHERE id = $1 AND deleted_seq IS NULL RETURNING repo_id, size",
        artifact_id,
        seq,
        reason,
    )
    if row is not None:
        await conn.execute(
            f"UPDATE {_REPO} SET used_bytes = used_bytes - $2, artifact_count = artifact_count "
            "- 1, artifacts_seq = $3 WHERE id = $1",
            row["repo_id"],
            row["size"],
            seq,
        )


async def artifact_by_id(db: Queryable, artifact_id: str) -> Artifact | None:
    row = await db.fetchrow(
        f"SELECT {ART_COLUMNS} FROM {_ART} a WHERE a.id = $1 AND a.deleted_seq IS NULL",
        artifact_id,
    )
    return artifact_of(row) if row else None


async def artifact_by_path(db: Queryable, repo_id: str, path: str) -> Artifact | None:
    row = await db.fetchrow(
        f"SELECT {ART_COLUMNS} FROM {_ART} a "
        "WHERE a.repo_id = $1 AND a.path = $2 AND a.deleted_seq IS NULL",
        repo_id,
        path,
    )
    return artifact_of(row) if row else None


async def digest_uses(db: Queryable, digest: str) -> int:
    """Artifacts (not deleted) whose content or core-metadata file is the blob ``digest``."""
    return int(
        await db.fetchval(
            f"SELECT count(*) FROM {_ART} WHERE deleted_seq IS NULL "
            "AND (digest = $1 OR metadata_digest = $1)",
            digest,
        )
    )


async def path_was_used(db: Queryable, repo_id: str, path: str) -> bool:
    """Whether an artifact of ``path`` was ever in the repository (deleted ones too)."""
    return bool(
        await db.fetchval(
            f"SELECT 1 FROM {_ART} WHERE repo_id = $1 AND path = $2 LIMIT 1", repo_id, path
        )
    )


async def list_artifacts(
    db: Queryable,
    *,
    project_ids: Sequence[str] | None,
    repo_id: str | None,
    q: str | None,
    before_seq: int | None,
    limit: int,
    quarantined_only: bool = False,
) -> list[tuple[Artifact, int]]:
    """(artifact, uploaded_seq), newest first; ``q`` is a case-insensitive substring of the
    name, path or purl."""
    rows = await db.fetch(
        f"SELECT {ART_COLUMNS}, a.uploaded_seq FROM {_ART} a WHERE a.deleted_seq IS NULL "
        "AND ($1::text[] IS NULL OR a.project_id = ANY($1)) "
        "AND ($2::text IS NULL OR a.repo_id = $2) "
        "AND ($3::text IS NULL OR strpos(lower(a.path), $3) > 0 "
        "OR strpos(lower(coalesce(a.name, '')), $3) > 0 "
        "OR strpos(lower(coalesce(a.purl, '')), $3) > 0) "
        "AND ($4::bigint IS NULL OR a.uploaded_seq < $4) "
        "AND (NOT $6 OR a.quarantined) "
        "ORDER BY a.uploaded_seq DESC LIMIT $5",
        list(project_ids) if project_ids is not None else None,
        repo_id,
        q.lower() if q else None,
        before_seq,
        limit,
        quarantined_only,
    )
    found = []
    for row in rows:
        fields = dict(row)
        seq = int(fields.pop("uploaded_seq"))
        found.append((artifact_of(fields), seq))  # type: ignore[arg-type]
    return found


async def package_names(db: Queryable, repo_id: str) -> list[str]:
    rows = await db.fetch(
        f"SELECT DISTINCT normalized_name FROM {_ART} WHERE repo_id = $1 "
        "AND deleted_seq IS NULL AND normalized_name IS NOT NULL ORDER BY 1",
        repo_id,
    )
    return [row[0] for row in rows]


async def package_files(db: Queryable, repo_id: str, normalized: str) -> list[Artifact]:
    rows = await db.fetch(
        f"SELECT {ART_COLUMNS} FROM {_ART} a WHERE a.repo_id = $1 AND a.normalized_name = $2 "
        "AND a.deleted_seq IS NULL ORDER BY a.path",
        repo_id,
        normalized,
    )
    return [artifact_of(row) for row in rows]


def facts_of(artifact: Artifact) -> ArtifactFacts:
    return ArtifactFacts(
        format=artifact.format,
        digest=artifact.digest,
        path=artifact.path,
        name=artifact.name,
        version=artifact.version,
        purl=artifact.purl,
    )


def index_file(artifact: Artifact, *, available: bool) -> IndexFile:
    return IndexFile(
        path=artifact.path,
        digest=artifact.digest,
        size=artifact.size,
        requires_python=artifact.requires_python,
        metadata_digest=artifact.metadata_digest,
        uploaded_at=artifact.uploaded_at,
        available=available,
    )


# ---- blocks ---------------------------------------------------------------------------------
class BlockRow(msgspec.Struct, frozen=True, kw_only=True):
    block: Block
    created_seq: int

    @property
    def rule(self) -> BlockRule:
        b = self.block
        return BlockRule(
            id=b.id,
            purl=b.purl,
            versions=b.versions,
            digest=b.digest,
            name_pattern=b.name_pattern,
            format=b.format,
            blocked_until=b.blocked_until,
            created_seq=self.created_seq,
        )


def _block_row(row: asyncpg.Record) -> BlockRow:
    fields = dict(row)
    seq = int(fields.pop("created_seq"))
    return BlockRow(block=Block(**fields), created_seq=seq)


async def _blocks_changed(conn: asyncpg.Connection, seq: int) -> None:
    await conn.execute(
        "INSERT INTO scanner.registry_block_changes (id, seq) VALUES (1, $1) "
        "ON CONFLICT (id) DO UPDATE SET seq = greatest(registry_block_changes.seq, $1)",
        seq,
    )


def purl_key_of(purl: str | None) -> str | None:
    if purl is None:
        return None
    ref = purl_ref(purl)
    return ref.key if ref else None


async def insert_block(
    conn: asyncpg.Connection, payload: BlockCreated, *, at: dt.datetime, actor: str, seq: int
) -> None:
    await conn.execute(
        f"INSERT INTO {_BLOCK} (id, purl, purl_key, versions, digest, name_pattern, format, "
        "reason, customer_message, blocked_until, source, advisory_id, created_at, "
        "created_by, created_seq, updated_at, revision) VALUES ($1, $2, $3, $4, $5, $6, $7, "
        "$8, $9, $10, $11, $12, $13, $14, $15, $13, $15) ON CONFLICT DO NOTHING",
        payload.id,
        payload.purl,
        purl_key_of(payload.purl),
        payload.versions,
        payload.digest,
        payload.name_pattern,
        payload.format,
        payload.reason,
        payload.customer_message,
        payload.blocked_until,
        payload.source,
        payload.advisory_id,
        at,
        actor,
        seq,
    )
    await _blocks_changed(conn, seq)


BLOCK_PATCHABLE = ("versions", "reason", "customer_message", "blocked_until")


async def update_block(
    conn: asyncpg.Connection, payload: BlockUpdated, *, at: dt.datetime, seq: int
) -> None:
    await _apply_patch(conn, _BLOCK, payload, BLOCK_PATCHABLE, at=at, seq=seq)
    await _blocks_changed(conn, seq)


async def delete_block(conn: asyncpg.Connection, block_id: str, *, seq: int) -> None:
    await conn.execute(f"DELETE FROM {_BLOCK} WHERE id = $1", block_id)
    await _blocks_changed(conn, seq)


async def count_hit(conn: asyncpg.Connection, block_id: str) -> None:
    await conn.execute(f"UPDATE {_BLOCK} SET hits = hits + 1 WHERE id = $1", block_id)


async def block_by_id(db: Queryable, block_id: str) -> Block | None:
    row = await db.fetchrow(f"SELECT {_BLOCK_COLUMNS} FROM {_BLOCK} WHERE id = $1", block_id)
    return _block_row(row).block if row else None


async def list_blocks(db: Queryable, *, after_seq: int | None, limit: int) -> list[BlockRow]:
    rows = await db.fetch(
        f"SELECT {_BLOCK_COLUMNS} FROM {_BLOCK} WHERE ($1::bigint IS NULL OR created_seq > $1) "
        "ORDER BY created_seq LIMIT $2",
        after_seq,
        limit,
    )
    return [_block_row(row) for row in rows]


async def candidate_blocks(
    db: Queryable, *, digests: Sequence[str], purl_keys: Sequence[str]
) -> list[BlockRow]:
    """The blocks that may match artifacts of these digests and packages: by digest, by
    package, and every name pattern (few; matched in the domain)."""
    rows = await db.fetch(
        f"SELECT {_BLOCK_COLUMNS} FROM {_BLOCK} WHERE digest = ANY($1::text[]) "
        "OR purl_key = ANY($2::text[]) OR name_pattern IS NOT NULL",
        list(digests),
        list(purl_keys),
    )
    return [_block_row(row) for row in rows]
