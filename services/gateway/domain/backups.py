"""How healthy the backups are, from the newest successful and the newest attempted one."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

BackupStatus = Literal["ok", "stale", "failed", "never"]


@dataclass(frozen=True, kw_only=True)
class BackupOutcome:
    backup_id: str
    succeeded: bool
    finished_at: dt.datetime


def backup_status(
    *,
    last_success: BackupOutcome | None,
    last_attempt: BackupOutcome | None,
    now: dt.datetime,
    max_age: dt.timedelta,
) -> BackupStatus:
    """``never`` without a successful backup; ``failed`` when the newest attempt failed (a
    working older archive does not hide a broken backup job); ``stale`` when the newest
    success is older than ``max_age``; else ``ok``."""
    if last_success is None:
        return "never"
    if last_attempt is not None and not last_attempt.succeeded:
        return "failed"
    if now - last_success.finished_at > max_age:
        return "stale"
    return "ok"
