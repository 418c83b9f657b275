"""How a mirror reads (pure): its configuration and its fetch status."""

from __future__ import annotations

from contracts.rpc.signatures import FetchProgress, FetchStatus, MirrorView
from services.signature_verifier.mirrors.store import MirrorRow, StatusRow

PROGRESS_FIELDS = (
    "received_objects",
    "total_objects",
    "indexed_deltas",
    "total_deltas",
    "received_bytes",
)


def fetch_status(status: StatusRow, *, queued: bool) -> FetchStatus:
    """A mirror with a fetch waiting reads ``queued`` unless a fetch is running."""
    state = status.state
    if queued and state != "fetching":
        state = "queued"
    progress = None
    if status.progress:
        progress = FetchProgress(
            **{name: int(status.progress.get(name, 0)) for name in PROGRESS_FIELDS}
        )
    return FetchStatus(
        state=state,  # type: ignore[arg-type]
        started_at=status.started_at,
        finished_at=status.finished_at,
        succeeded_at=status.succeeded_at,
        last_error=status.last_error,
        progress=progress,
        head=status.head,
    )


def mirror_view(row: MirrorRow, status: StatusRow, *, queued: bool) -> MirrorView:
    return MirrorView(
        repo=row.repo,
        project_id=row.project_id,
        clone_url=row.clone_url,
        default_branch=row.default_branch,
        resolved_default_branch=status.resolved_default_branch,
        credential=row.credential,
        status=fetch_status(status, queued=queued),
    )
