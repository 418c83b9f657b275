"""``GET /health/backup``: is there a recent, successful backup?

Without a token (a monitor's probe) it answers only the status and the age; an ADMIN's token
adds the newest success, failure and restore. 200 when ``ok``; 503 when ``stale``, ``failed``
or ``never``, so a plain HTTP check alarms."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import asyncpg
import msgspec
from aiohttp import web

from services.gateway import backups
from services.gateway.deps import deps_of
from services.gateway.dispatch import authenticate
from services.gateway.domain.backups import backup_status
from services.gateway.routing import RequestContext, Route
from shared.http import json_response


class BackupRecord(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    backup_id: str
    finished_at: dt.datetime
    archive: str | None = None
    sha256: str | None = None
    size_bytes: int | None = None
    last_sequence: int | None = None
    events: int | None = None
    blobs: int | None = None
    tables: list[str] = []
    error: str | None = None


class BackupDetails(msgspec.Struct, frozen=True, kw_only=True):
    max_age_hours: float
    last_success: BackupRecord | None
    last_failure: BackupRecord | None
    last_restore: BackupRecord | None


class BackupHealth(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    status: Annotated[
        Literal["ok", "stale", "failed", "never"],
        msgspec.Meta(description="`failed`: the newest attempt failed; `never`: no success yet"),
    ]
    last_backup_at: dt.datetime | None = None
    age_seconds: float | None = None
    details: Annotated[BackupDetails | None, msgspec.Meta(description="ADMIN only")] = None


def _record(row: asyncpg.Record | None) -> BackupRecord | None:
    if row is None:
        return None
    return BackupRecord(
        backup_id=row["backup_id"],
        finished_at=row["finished_at"],
        archive=row["archive"],
        sha256=row["sha256"],
        size_bytes=row["size_bytes"],
        last_sequence=row["last_sequence"],
        events=row["events"],
        blobs=row["blobs"],
        tables=list(row["tables"] or []),
        error=row["error"],
    )


async def get_backup_health(ctx: RequestContext) -> web.StreamResponse:
    deps = deps_of(ctx)
    # A token, when sent, must be valid (401 otherwise); only ADMIN sees the details.
    principal = (
        await authenticate(ctx.request, deps) if "Authorization" in ctx.request.headers else None
    )
    success = await backups.latest(deps.pool, "completed")
    attempt = await backups.latest(deps.pool, "completed", "failed")
    now = dt.datetime.now(dt.UTC)
    max_age = dt.timedelta(hours=deps.settings.backup_max_age_hours)
    status = backup_status(
        last_success=backups.outcome(success),
        last_attempt=backups.outcome(attempt),
        now=now,
        max_age=max_age,
    )
    details = None
    if principal is not None and "ADMIN" in principal.roles:
        details = BackupDetails(
            max_age_hours=deps.settings.backup_max_age_hours,
            last_success=_record(success),
            last_failure=_record(await backups.latest(deps.pool, "failed")),
            last_restore=_record(await backups.latest(deps.pool, "restored")),
        )
    body = BackupHealth(
        status=status,
        last_backup_at=success["finished_at"] if success else None,
        age_seconds=round((now - success["finished_at"]).total_seconds(), 3) if success else None,
        details=details,
    )
    return json_response(
        body, status=200 if status == "ok" else 503, headers={"Cache-Control": "no-store"}
    )


ROUTES: list[Route] = [
    Route(
        method="GET",
        path="/health/backup",
        handler=get_backup_health,
        roles=None,
        summary="Age and result of the newest backup (details with an ADMIN token)",
        tag="meta",
        response=BackupHealth,
        also_succeeds=(503,),
        errors=(401,),
    ),
]
