"""What the commits API reads from the service's read model: a mirror's default branch and
the verification cache (one query per page)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import msgspec

from services.signature_verifier.commits.domain.views import VerificationRow


class MirrorRow(msgspec.Struct, frozen=True, kw_only=True):
    repo: str
    # The configured branch, else the one the last fetch resolved; None: the mirror's HEAD.
    default_branch: str | None


async def mirror(pool: asyncpg.Pool, repo: str) -> MirrorRow | None:
    row = await pool.fetchrow(
        "SELECT m.repo, coalesce(m.default_branch, s.resolved_default_branch) AS branch "
        "FROM signature_verifier.mirrors m "
        "LEFT JOIN signature_verifier.mirror_status s ON s.repo_key = m.repo_key "
        "WHERE m.repo_key = $1",
        repo.lower(),
    )
    if row is None:
        return None
    return MirrorRow(repo=row["repo"], default_branch=row["branch"])


async def verifications(
    pool: asyncpg.Pool, repo: str, oids: Sequence[str]
) -> dict[str, VerificationRow]:
    if not oids:
        return {}
    rows = await pool.fetch(
        "SELECT oid, verified, reason, verified_at FROM signature_verifier.verifications "
        "WHERE repo_key = $1 AND oid = ANY($2::text[])",
        repo.lower(),
        list(oids),
    )
    return {
        row["oid"]: VerificationRow(
            verified=row["verified"], reason=row["reason"], verified_at=row["verified_at"]
        )
        for row in rows
    }
