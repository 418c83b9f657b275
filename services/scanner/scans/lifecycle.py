"""The scan lifecycle as pure rules: ``queued → running → succeeded | failed | cancelled``.

Terminal states are final: an event that arrives for a finished scan (a worker's late
``scan.completed`` after a cancel, a duplicate) changes nothing. Only a finished scan can be
deleted, and one carrying a release label needs ``force``.
"""

from __future__ import annotations

from shared.errors import Conflict

TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
ACTIVE: frozenset[str] = frozenset({"queued", "running"})

_NEXT: dict[str, str] = {
    "scan.started": "running",
    "scan.progressed": "running",
    "scan.completed": "succeeded",
    "scan.failed": "failed",
    "scan.cancelled": "cancelled",
}


class ScanNotTerminal(Conflict):
    code, title = "scan_not_finished", "The scan has not finished"


class ScanFinished(Conflict):
    code, title = "scan_already_finished", "The scan has already finished"


class ScanLabelled(Conflict):
    code, title = "scan_release_labelled", "The scan carries a release label"


def next_status(current: str, event_type: str) -> str | None:
    """The status after ``event_type``, or None when the event changes nothing."""
    if current in TERMINAL:
        return None
    target = _NEXT.get(event_type)
    if target is None:
        return None
    if target == "running" and current == "running" and event_type == "scan.started":
        return None
    return target


def check_cancellable(status: str, scan_id: str) -> None:
    if status in TERMINAL:
        raise ScanFinished(
            f"scan {scan_id} has already {status}; only a queued or running scan can be cancelled",
            extra={"scan_status": status},
        )


def check_deletable(status: str, label: str | None, *, force: bool, scan_id: str) -> None:
    if status not in TERMINAL:
        raise ScanNotTerminal(
            f"scan {scan_id} is {status}; cancel it or wait until it has finished",
            extra={"scan_status": status},
        )
    if label and not force:
        raise ScanLabelled(
            f"scan {scan_id} is the evidence of release {label!r}; delete it with force=true",
            extra={"label": label},
        )
