"""Queries of service accounts and their tokens, and the one write of the gateway's own that
is not an event: a token's last use."""

from __future__ import annotations

import datetime as dt

import asyncpg

from services.gateway.adapters.read_model import Queryable
from services.gateway.domain.service_accounts import LAST_USED_EVERY, looks_like_service_account_id
from services.gateway.dto import ServiceAccountTokenView, ServiceAccountView

_ACCOUNT_COLUMNS = "id, project_id, name, description, roles, created_at, created_by"
_TOKEN_COLUMNS = (
    "t.id, t.service_account_id, t.project_id, t.name, t.prefix, t.roles, t.expires_at, "
    "t.created_at, t.created_by, t.revoked_at, u.last_used_at"
)
_TOKENS = (
    "gateway.service_account_tokens t "
    "LEFT JOIN gateway.service_account_token_usage u ON u.token_id = t.id"
)


def _account(row: asyncpg.Record) -> ServiceAccountView:
    return ServiceAccountView(
        id=row["id"],
        project_id=row["project_id"],
        name=row["name"],
        description=row["description"],
        roles=list(row["roles"]),
        created_at=row["created_at"],
        created_by=row["created_by"],
    )


def _token(row: asyncpg.Record) -> ServiceAccountTokenView:
    return ServiceAccountTokenView(
        id=row["id"],
        service_account_id=row["service_account_id"],
        project_id=row["project_id"],
        name=row["name"],
        prefix=row["prefix"],
        roles=list(row["roles"]),
        expires_at=row["expires_at"],
        created_at=row["created_at"],
        created_by=row["created_by"],
        last_used_at=row["last_used_at"],
        revoked=row["revoked_at"] is not None,
        revoked_at=row["revoked_at"],
    )


async def find_service_account(
    db: Queryable, project_id: str, ref: str
) -> ServiceAccountView | None:
    """A live account of ``project_id`` by id (``sa_<hex>``) or by name."""
    column = "id" if looks_like_service_account_id(ref) else "name"
    row = await db.fetchrow(
        f"SELECT {_ACCOUNT_COLUMNS} FROM gateway.service_accounts "
        f"WHERE project_id = $1 AND {column} = $2 AND deleted_at IS NULL",
        project_id,
        ref,
    )
    return _account(row) if row else None


async def name_in_use(db: Queryable, project_id: str, name: str) -> bool:
    return bool(
        await db.fetchval(
            "SELECT 1 FROM gateway.service_accounts "
            "WHERE project_id = $1 AND name = $2 AND deleted_at IS NULL",
            project_id,
            name,
        )
    )


async def list_service_accounts(
    db: Queryable, project_id: str, *, after_name: str | None, name: str | None, limit: int
) -> list[ServiceAccountView]:
    rows = await db.fetch(
        f"SELECT {_ACCOUNT_COLUMNS} FROM gateway.service_accounts "
        "WHERE project_id = $1 AND deleted_at IS NULL "
        "AND ($2::text IS NULL OR name > $2) AND ($3::text IS NULL OR name = $3) "
        "ORDER BY name LIMIT $4",
        project_id,
        after_name,
        name,
        limit,
    )
    return [_account(row) for row in rows]


async def find_token(
    db: Queryable, service_account_id: str, token_id: str
) -> ServiceAccountTokenView | None:
    row = await db.fetchrow(
        f"SELECT {_TOKEN_COLUMNS} FROM {_TOKENS} WHERE t.service_account_id = $1 AND t.id = $2",
        service_account_id,
        token_id,
    )
    return _token(row) if row else None


async def list_tokens(
    db: Queryable, service_account_id: str, *, after_id: str | None, limit: int
) -> list[ServiceAccountTokenView]:
    rows = await db.fetch(
        f"SELECT {_TOKEN_COLUMNS} FROM {_TOKENS} "
        "WHERE t.service_account_id = $1 AND ($2::text IS NULL OR t.id > $2) "
        "ORDER BY t.id LIMIT $3",
        service_account_id,
        after_id,
        limit,
    )
    return [_token(row) for row in rows]


async def record_last_use(db: Queryable, token_id: str, at: dt.datetime) -> None:
    """Write ``at`` as the token's last use unless one within the last minute is there (from
    another replica): at most one write a minute per token, whatever the replica count."""
    await db.execute(
        "INSERT INTO gateway.service_account_token_usage AS u (token_id, last_used_at) "
        "VALUES ($1, $2) ON CONFLICT (token_id) DO UPDATE SET last_used_at = excluded.last_used_at "
        "WHERE u.last_used_at <= excluded.last_used_at - $3::interval",
        token_id,
        at,
        LAST_USED_EVERY,
    )
