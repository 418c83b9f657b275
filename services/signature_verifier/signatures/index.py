"""The hook between fetching and verifying: after every successful fetch of a mirror (and
from ``gatehouse signatures backfill-all``) the commits of the mirror that carry a
signature are indexed and queued for verification, off the request path.

(Filled in by the verification work; until then indexing finds nothing.)
"""

from __future__ import annotations

from pathlib import Path

import asyncpg


async def index_mirror(pool: asyncpg.Pool, *, repo: str, path: Path) -> int:
    """Index the signed commits of the bare repository at ``path`` (the mirror of ``repo``)
    not indexed yet, and queue their verification. Returns how many were new."""
    del pool, repo, path
    return 0
