"""Queries of the gateway read model: rows become DTOs and domain values here, nowhere else."""

from __future__ import annotations

from typing import Any, TypeAlias

import asyncpg

from services.gateway.domain.access import StoredKey
from services.gateway.domain.projects import ProjectState, looks_like_id
from services.gateway.domain.users import email_key, login_key
from services.gateway.dto import ApiKeyView, EmailView, ProjectView, UserView

# Anything that can run a query: the pool or a connection inside a transaction.
Queryable: TypeAlias = asyncpg.Pool | asyncpg.Connection

_PROJECT_COLUMNS = (
    "id, slug, name, description, default_branch, repos, badge, created_at, "
    "created_by, updated_at, archived_at, version"
)
_KEY_COLUMNS = (
    "id, name, prefix, roles, project_id, expires_at, created_at, created_by, revoked_at, "
    "bootstrap, user_login"
)


def _project(row: asyncpg.Record) -> ProjectView:
    return ProjectView(
        id=row["id"],
        slug=row["slug"],
        name=row["name"],
        description=row["description"],
        default_branch=row["default_branch"],
        repos=list(row["repos"]),
        badge=row["badge"],
        archived=row["archived_at"] is not None,
        archived_at=row["archived_at"],
        created_at=row["created_at"],
        created_by=row["created_by"],
        updated_at=row["updated_at"],
        version=row["version"],
    )


def project_state(view: ProjectView) -> ProjectState:
    return ProjectState(
        project_id=view.id,
        name=view.name,
        description=view.description,
        default_branch=view.default_branch,
        repos=list(view.repos),
        badge=view.badge,
    )


async def find_project(db: Queryable, ref: str) -> ProjectView | None:
    """A project by id (when ``ref`` is a UUID) or by slug."""
    column = "id" if looks_like_id(ref) else "slug"
    row = await db.fetchrow(
        f"SELECT {_PROJECT_COLUMNS} FROM gateway.projects WHERE {column} = $1", ref
    )
    return _project(row) if row else None


async def projects_listing_repo(db: Queryable, repo: str) -> list[ProjectView]:
    """Every project (archived ones too) whose repos list ``repo`` (in any case, as GitHub
    compares them), oldest first."""
    rows = await db.fetch(
        f"SELECT {_PROJECT_COLUMNS} FROM gateway.projects "
        "WHERE lower($1) IN (SELECT lower(r) FROM unnest(repos) AS r) "
        "ORDER BY created_at, id",
        repo,
    )
    return [_project(row) for row in rows]


async def slug_in_use(db: Queryable, slug: str) -> bool:
    return bool(await db.fetchval("SELECT 1 FROM gateway.projects WHERE slug = $1", slug))


async def list_projects(
    db: Queryable,
    *,
    after_slug: str | None,
    limit: int,
    include_archived: bool,
    only_project: str | None,
) -> list[ProjectView]:
    rows = await db.fetch(
        f"SELECT {_PROJECT_COLUMNS} FROM gateway.projects "
        "WHERE ($1::text IS NULL OR slug > $1) AND ($2 OR archived_at IS NULL) "
        "AND ($3::text IS NULL OR id = $3) ORDER BY slug LIMIT $4",
        after_slug,
        include_archived,
        only_project,
        limit,
    )
    return [_project(row) for row in rows]


def _key_view(row: asyncpg.Record) -> ApiKeyView:
    return ApiKeyView(
        id=row["id"],
        name=row["name"],
        prefix=row["prefix"],
        roles=list(row["roles"]),
        project_id=row["project_id"],
        expires_at=row["expires_at"],
        created_at=row["created_at"],
        created_by=row["created_by"],
        revoked_at=row["revoked_at"],
        bootstrap=row["bootstrap"],
        user=row["user_login"],
    )


# API keys and service-account tokens in one lookup, so that every way of presenting a token
# (Bearer, HTTP Basic `__token__:<token>`) accepts both. A token of a deleted account is
# revoked by the same event (the coalesce keeps that true even for a row written otherwise).
_TOKEN_LOOKUP = (
    "SELECT id, name, prefix, roles, project_id, expires_at, revoked_at, bootstrap, "
    "user_login, NULL::text AS service_account_id "
    "FROM gateway.api_keys WHERE token_sha256 = $1 "
    "UNION ALL "
    "SELECT t.id, a.name, t.prefix, t.roles, t.project_id, t.expires_at, "
    "coalesce(t.revoked_at, a.deleted_at), false, NULL, t.service_account_id "
    "FROM gateway.service_account_tokens t "
    "JOIN gateway.service_accounts a ON a.id = t.service_account_id "
    "WHERE t.token_sha256 = $1 "
    "LIMIT 1"
)


async def key_by_token_hash(db: Queryable, token_sha256: str) -> StoredKey | None:
    """The API key or service-account token whose token hashes to ``token_sha256``."""
    row = await db.fetchrow(_TOKEN_LOOKUP, token_sha256)
    if row is None:
        return None
    return StoredKey(
        key_id=row["id"],
        name=row["name"],
        prefix=row["prefix"],
        roles=frozenset(row["roles"]),
        project_id=row["project_id"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        bootstrap=row["bootstrap"],
        user=row["user_login"],
        service_account_id=row["service_account_id"],
    )


async def find_key(db: Queryable, key_id: str) -> ApiKeyView | None:
    row = await db.fetchrow(f"SELECT {_KEY_COLUMNS} FROM gateway.api_keys WHERE id = $1", key_id)
    return _key_view(row) if row else None


async def list_keys(
    db: Queryable,
    *,
    after_id: str | None,
    limit: int,
    include_revoked: bool,
    only_project: str | None,
) -> list[ApiKeyView]:
    rows = await db.fetch(
        f"SELECT {_KEY_COLUMNS} FROM gateway.api_keys "
        "WHERE ($1::text IS NULL OR id > $1) AND ($2 OR revoked_at IS NULL) "
        "AND ($3::text IS NULL OR project_id = $3) ORDER BY id LIMIT $4",
        after_id,
        include_revoked,
        only_project,
        limit,
    )
    return [_key_view(row) for row in rows]


async def bootstrap_key_exists(db: Queryable) -> bool:
    """Revoked counts too: revoking the bootstrap key must not mint a new one on restart."""
    return bool(await db.fetchval("SELECT 1 FROM gateway.api_keys WHERE bootstrap LIMIT 1"))


async def find_user(db: Queryable, login: str) -> UserView | None:
    row = await db.fetchrow(
        "SELECT login, name, created_at, updated_at FROM gateway.users WHERE login_key = $1",
        login_key(login),
    )
    if row is None:
        return None
    emails = await db.fetch(
        "SELECT email, verified, added_at, verified_at FROM gateway.user_emails "
        "WHERE login = $1 ORDER BY email_key",
        row["login"],
    )
    return UserView(
        login=row["login"],
        name=row["name"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        emails=[
            EmailView(
                email=e["email"],
                verified=e["verified"],
                added_at=e["added_at"],
                verified_at=e["verified_at"],
            )
            for e in emails
        ],
    )


async def email_owner(db: Queryable, email: str) -> str | None:
    owner: Any = await db.fetchval(
        "SELECT login FROM gateway.user_emails WHERE email_key = $1", email_key(email)
    )
    return str(owner) if owner is not None else None
