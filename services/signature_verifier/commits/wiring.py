"""Registers the commits part on the signature-verifier's runtime: ``commits_list`` and
``commit_get``. No projection of its own: it reads the mirrors on disk, the ``mirrors``
read model and the verification cache the other parts keep."""

from __future__ import annotations

from contracts.rpc import signatures as rpc
from services.signature_verifier.commits.handlers import CommitsHandlers
from services.signature_verifier.mirrors.wiring import PROJECTION as MIRRORS_PROJECTION
from services.signature_verifier.signatures.projection import SignaturesProjection
from shared.service import Runtime

READ_CONCURRENCY = 16
SIGNATURES_PROJECTION = SignaturesProjection.name


async def setup(runtime: Runtime) -> None:
    handlers = CommitsHandlers(
        pool=runtime.pool,
        settings=runtime.settings,
        mirrors=runtime.runners[MIRRORS_PROJECTION],
        signatures=runtime.runners[SIGNATURES_PROJECTION],
    )
    # Read-only, and each request waits on the database and a git thread: answering several
    # at once keeps both busy (one at a time, a page's round trips were the ceiling).
    runtime.rpc.add(
        rpc.COMMITS_LIST, rpc.CommitsListRequest, handlers.list, concurrency=READ_CONCURRENCY
    )
    runtime.rpc.add(
        rpc.COMMIT_GET, rpc.CommitGetRequest, handlers.get, concurrency=READ_CONCURRENCY
    )
