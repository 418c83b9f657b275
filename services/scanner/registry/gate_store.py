"""SQL of the registry's gate: what the scan on upload recorded, which block applies to an
artifact as ``artifact.blocked`` / ``artifact.unblocked`` last said, the blocks that
malicious-package advisories made, and the reads the scan, sweep and block jobs need."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import msgspec

from contracts.events.registry import ArtifactScanned
from contracts.rpc.registry import Artifact
from services.scanner.registry.store import (
    ART_COLUMNS,
    Queryable,
    artifact_of,
    artifacts_changed,
)

_ART = "scanner.registry_artifacts"
_ADVISORY_BLOCKS = "scanner.registry_advisory_blocks"


# ---- projection side ------------------------------------------------------------------------
async def record_scan(conn: asyncpg.Connection, payload: ArtifactScanned, *, seq: int) -> None:
    repo_id = await conn.fetchval(
        f"UPDATE {_ART} SET scan_status = $2, scan_id = $3, advisories = $4, malicious = $5 "
        "WHERE id = $1 AND deleted_seq IS NULL RETURNING repo_id",
        payload.id,
        payload.verdict,
        payload.scan_id,
        list(payload.advisories),
        list(payload.malicious),
    )
    if repo_id is not None:
        await artifacts_changed(conn, repo_id, seq)


async def set_block_state(
    conn: asyncpg.Connection, artifact_id: str, block_id: str | None, *, seq: int
) -> None:
    await conn.execute(
        f"UPDATE {_ART} SET blocked_by = $2, block_state_seq = $3 WHERE id = $1",
        artifact_id,
        block_id,
        seq,
    )


async def record_advisory_block(
    conn: asyncpg.Connection, *, block_id: str, advisory_id: str, purl_key: str, seq: int
) -> None:
    await conn.execute(
        f"INSERT INTO {_ADVISORY_BLOCKS} (block_id, advisory_id, purl_key, created_seq) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        block_id,
        advisory_id,
        purl_key,
        seq,
    )


async def lift_advisory_block(conn: asyncpg.Connection, block_id: str, *, seq: int) -> None:
    await conn.execute(
        f"UPDATE {_ADVISORY_BLOCKS} SET lifted_seq = $2 WHERE block_id = $1 AND lifted_seq IS NULL",
        block_id,
        seq,
    )


async def artifact_ids_of_repo(conn: asyncpg.Connection, repo_id: str) -> list[str]:
    rows = await conn.fetch(
        f"SELECT id FROM {_ART} WHERE repo_id = $1 AND deleted_seq IS NULL", repo_id
    )
    return [row["id"] for row in rows]


# ---- the jobs' reads ------------------------------------------------------------------------
class ArtifactState(msgspec.Struct, frozen=True, kw_only=True):
    """A live artifact with what the gate keeps of it."""

    artifact: Artifact
    sbom_digests: tuple[str, ...]
    purl_key: str | None
    blocked_by: str | None
    block_state_seq: int


_STATE_COLUMNS = f"{ART_COLUMNS}, a.sbom_digests, a.purl_key, a.blocked_by, a.block_state_seq"


def _state(row: asyncpg.Record) -> ArtifactState:
    fields = dict(row)
    sbom_digests = fields.pop("sbom_digests")
    purl_key = fields.pop("purl_key")
    blocked_by = fields.pop("blocked_by")
    block_state_seq = fields.pop("block_state_seq")
    return ArtifactState(
        artifact=artifact_of(fields),  # type: ignore[arg-type]
        sbom_digests=tuple(sbom_digests),
        purl_key=purl_key,
        blocked_by=blocked_by,
        block_state_seq=block_state_seq,
    )


async def artifact_states(db: Queryable, artifact_ids: Sequence[str]) -> list[ArtifactState]:
    rows = await db.fetch(
        f"SELECT {_STATE_COLUMNS} FROM {_ART} a WHERE a.id = ANY($1::text[]) "
        "AND a.deleted_seq IS NULL ORDER BY a.uploaded_seq",
        list(artifact_ids),
    )
    return [_state(row) for row in rows]


async def artifacts_a_block_may_name(
    db: Queryable,
    *,
    block_id: str,
    digest: str | None,
    purl_key: str | None,
    name_pattern: bool,
    format_: str | None,
) -> list[str]:
    """Live artifacts a block may apply to (matched exactly in the domain afterwards), and
    those it applied to as last said: by digest, by package, every one of the format for a
    name pattern."""
    rows = await db.fetch(
        f"SELECT id FROM {_ART} WHERE deleted_seq IS NULL AND (blocked_by = $1 "
        "OR ($2::text IS NOT NULL AND digest = $2) "
        "OR ($3::text IS NOT NULL AND purl_key = $3) "
        "OR ($4 AND ($5::text IS NULL OR format = $5))) ORDER BY uploaded_seq",
        block_id,
        digest,
        purl_key,
        name_pattern,
        format_,
    )
    return [row["id"] for row in rows]


async def live_artifacts_of_package(db: Queryable, purl_key: str) -> list[ArtifactState]:
    rows = await db.fetch(
        f"SELECT {_STATE_COLUMNS} FROM {_ART} a WHERE a.purl_key = $1 AND a.deleted_seq IS NULL "
        "ORDER BY a.uploaded_seq",
        purl_key,
    )
    return [_state(row) for row in rows]


async def advisory_block_made(db: Queryable, block_id: str) -> bool:
    """Whether a malicious-package advisory made this block before (lifted or not)."""
    return bool(
        await db.fetchval(f"SELECT 1 FROM {_ADVISORY_BLOCKS} WHERE block_id = $1", block_id)
    )


async def advisory_documents(db: Queryable, advisory_ids: Sequence[str]) -> dict[str, bytes]:
    rows = await db.fetch(
        "SELECT id, document FROM scanner.advisories WHERE id = ANY($1::text[]) "
        "AND withdrawn IS NULL",
        list(advisory_ids),
    )
    return {row["id"]: bytes(row["document"]) for row in rows}


async def malicious_advisories_of_import(db: Queryable, sequence: int) -> dict[str, bytes]:
    """The malicious-package advisories (``MAL-``) an import added or changed, withdrawn
    ones left out (every row carries the sequence of the import that last changed it)."""
    rows = await db.fetch(
        "SELECT id, document FROM scanner.advisories WHERE sequence = $1 "
        "AND id LIKE 'MAL-%' AND withdrawn IS NULL ORDER BY id",
        sequence,
    )
    return {row["id"]: bytes(row["document"]) for row in rows}


async def scan_exists(db: Queryable, scan_id: str) -> bool:
    return bool(await db.fetchval("SELECT 1 FROM scanner.scans WHERE id = $1", scan_id))
