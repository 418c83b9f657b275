"""Identity events → the gateway read model (projects, API keys, users, e-mail addresses,
service accounts and their tokens).

Every value written comes from the event: payload fields, the envelope's ``occurred_at`` and
``actor``, and the stream sequence as the row version. A replay from sequence 0 therefore
rebuilds byte-identical tables.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import asyncpg
import msgspec

from contracts.envelope import Event, EventPayload
from contracts.events.identity import (
    ApiKeyCreated,
    ApiKeyRevoked,
    ProjectArchived,
    ProjectCreated,
    ProjectUpdated,
    ServiceAccountCreated,
    ServiceAccountDeleted,
    ServiceAccountTokenCreated,
    ServiceAccountTokenRevoked,
    UserCreated,
    UserEmailAdded,
    UserEmailVerified,
)
from services.gateway.domain.users import email_key, login_key
from shared.errors import PermanentEventError
from shared.logging import event_log_context

SCHEMA = "gateway"
PROJECTION_TABLES = (
    "projects",
    "project_repos",
    "api_keys",
    "users",
    "user_emails",
    "service_accounts",
    "service_account_tokens",
)

Applier = Callable[[asyncpg.Connection, Event], Awaitable[None]]


async def _project_created(conn: asyncpg.Connection, event: Event) -> None:
    p = event.payload
    assert isinstance(p, ProjectCreated)
    at = event.envelope.occurred_at
    await conn.execute(
        "INSERT INTO gateway.projects (id, slug, name, description, default_branch, "
        "repos, badge, created_at, created_by, updated_at, archived_at, version) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $8, NULL, $10)",
        p.project_id,
        p.slug,
        p.name,
        p.description,
        p.default_branch,
        list(p.repos),
        p.badge,
        at,
        event.envelope.actor,
        event.sequence,
    )
    await _set_repos(conn, p.project_id, p.repos)


async def _set_repos(conn: asyncpg.Connection, project_id: str, repos: Sequence[str]) -> None:
    """One row per git repository the project lists (search finds each of them)."""
    await conn.execute("DELETE FROM gateway.project_repos WHERE project_id = $1", project_id)
    await conn.execute(
        "INSERT INTO gateway.project_repos (project_id, repo) "
        "SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
        project_id,
        list(repos),
    )


async def _project_updated(conn: asyncpg.Connection, event: Event) -> None:
    p = event.payload
    assert isinstance(p, ProjectUpdated)
    columns = ("name", "description", "default_branch", "repos", "badge")
    changes = {c: getattr(p, c) for c in columns if getattr(p, c) is not msgspec.UNSET}
    assignments = [f"{column} = ${i}" for i, column in enumerate(changes, start=4)]
    await _must_touch(
        conn,
        "UPDATE gateway.projects SET "
        + ", ".join(["updated_at = $2", "version = $3", *assignments])
        + " WHERE id = $1",
        p.project_id,
        event.envelope.occurred_at,
        event.sequence,
        *changes.values(),
        what=f"project {p.project_id}",
    )
    if "repos" in changes:
        await _set_repos(conn, p.project_id, changes["repos"])


async def _project_archived(conn: asyncpg.Connection, event: Event) -> None:
    p = event.payload
    assert isinstance(p, ProjectArchived)
    await _must_touch(
        conn,
        "UPDATE gateway.projects SET archived_at = $2, updated_at = $2, version = $3 WHERE id = $1",
        p.project_id,
        event.envelope.occurred_at,
        event.sequence,
        what=f"project {p.project_id}",
    )


async def _apikey_created(conn: asyncpg.Connection, event: Event) -> None:
    p = event.payload
    assert isinstance(p, ApiKeyCreated)
    await conn.execute(
        "INSERT INTO gateway.api_keys (id, name, prefix, token_sha256, roles, project_id, "
        "expires_at, bootstrap, created_at, created_by, revoked_at, revoked_by, version, "
        "user_login) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL, NULL, $11, $12)",
        p.key_id,
        p.name,
        p.prefix,
        p.token_sha256,
        sorted(p.roles),
        p.project_id,
        p.expires_at,
        p.bootstrap,
        event.envelope.occurred_at,
        event.envelope.actor,
        event.sequence,
        p.user,
    )


async def _apikey_revoked(conn: asyncpg.Connection, event: Event) -> None:
    p = event.payload
    assert isinstance(p, ApiKeyRevoked)
    # A second revocation keeps the first one's time and actor.
    await _must_touch(
        conn,
        "UPDATE gateway.api_keys SET revoked_at = coalesce(revoked_at, $2), "
        "revoked_by = coalesce(revoked_by, $3), version = $4 WHERE id = $1",
        p.key_id,
        event.envelope.occurred_at,
        event.envelope.actor,
        event.sequence,
        what=f"API key {p.key_id}",
    )


async def _service_account_created(conn: asyncpg.Connection, event: Event) -> None:
    p = event.payload
    assert isinstance(p, ServiceAccountCreated)
    await conn.execute(
        "INSERT INTO gateway.service_accounts (id, project_id, name, description, roles, "
        "created_at, created_by, deleted_at, deleted_by, version) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL, $8)",
        p.id,
        p.project_id,
        p.name,
        p.description,
        sorted(p.roles),
        event.envelope.occurred_at,
        event.envelope.actor,
        event.sequence,
    )


async def _service_account_deleted(conn: asyncpg.Connection, event: Event) -> None:
    p = event.payload
    assert isinstance(p, ServiceAccountDeleted)
    at, actor = event.envelope.occurred_at, event.envelope.actor
    await _must_touch(
        conn,
        "UPDATE gateway.service_accounts SET deleted_at = coalesce(deleted_at, $2), "
        "deleted_by = coalesce(deleted_by, $3), version = $4 WHERE id = $1",
        p.id,
        at,
        actor,
        event.sequence,
        what=f"service account {p.id}",
    )
    # Deleting the account revokes every token of it, by the same event.
    await conn.execute(
        "UPDATE gateway.service_account_tokens SET revoked_at = $2, revoked_by = $3, "
        "version = $4 WHERE service_account_id = $1 AND revoked_at IS NULL",
        p.id,
        at,
        actor,
        event.sequence,
    )


async def _service_account_token_created(conn: asyncpg.Connection, event: Event) -> None:
    p = event.payload
    assert isinstance(p, ServiceAccountTokenCreated)
    await conn.execute(
        "INSERT INTO gateway.service_account_tokens (id, service_account_id, project_id, name, "
        "prefix, token_sha256, roles, expires_at, created_at, created_by, revoked_at, "
        "revoked_by, version) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL, NULL, $11)",
        p.id,
        p.service_account_id,
        p.project_id,
        p.name,
        p.prefix,
        p.token_sha256,
        sorted(p.roles),
        p.expires_at,
        event.envelope.occurred_at,
        event.envelope.actor,
        event.sequence,
    )


async def _service_account_token_revoked(conn: asyncpg.Connection, event: Event) -> None:
    p = event.payload
    assert isinstance(p, ServiceAccountTokenRevoked)
    # A second revocation keeps the first one's time and actor.
    await _must_touch(
        conn,
        "UPDATE gateway.service_account_tokens SET revoked_at = coalesce(revoked_at, $3), "
        "revoked_by = coalesce(revoked_by, $4), version = $5 "
        "WHERE id = $1 AND service_account_id = $2",
        p.id,
        p.service_account_id,
        event.envelope.occurred_at,
        event.envelope.actor,
        event.sequence,
        what=f"token {p.id} of service account {p.service_account_id}",
    )


async def _user_created(conn: asyncpg.Connection, event: Event) -> None:
    p = event.payload
    assert isinstance(p, UserCreated)
    at = event.envelope.occurred_at
    await conn.execute(
        "INSERT INTO gateway.users (login, login_key, name, created_at, created_by, updated_at, "
        "version) VALUES ($1, $2, $3, $4, $5, $4, $6)",
        p.login,
        login_key(p.login),
        p.name,
        at,
        event.envelope.actor,
        event.sequence,
    )
    for email in p.emails:
        await _insert_email(conn, event, p.login, email.email, verified=email.verified)


async def _user_email_added(conn: asyncpg.Connection, event: Event) -> None:
    p = event.payload
    assert isinstance(p, UserEmailAdded)
    await _insert_email(conn, event, p.login, p.email, verified=p.verified)
    await _touch_user(conn, event, p.login)


async def _user_email_verified(conn: asyncpg.Connection, event: Event) -> None:
    p = event.payload
    assert isinstance(p, UserEmailVerified)
    await _must_touch(
        conn,
        "UPDATE gateway.user_emails SET verified = true, "
        "verified_at = coalesce(verified_at, $3), version = $4 "
        "WHERE email_key = $1 AND login = $2",
        email_key(p.email),
        p.login,
        event.envelope.occurred_at,
        event.sequence,
        what=f"e-mail {p.email} of {p.login}",
    )
    await _touch_user(conn, event, p.login)


async def _insert_email(
    conn: asyncpg.Connection, event: Event, login: str, email: str, *, verified: bool
) -> None:
    at = event.envelope.occurred_at
    await conn.execute(
        "INSERT INTO gateway.user_emails (email_key, login, email, verified, added_at, "
        "verified_at, version) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        email_key(email),
        login,
        email,
        verified,
        at,
        at if verified else None,
        event.sequence,
    )


async def _touch_user(conn: asyncpg.Connection, event: Event, login: str) -> None:
    await _must_touch(
        conn,
        "UPDATE gateway.users SET updated_at = $2, version = $3 WHERE login = $1",
        login,
        event.envelope.occurred_at,
        event.sequence,
        what=f"user {login}",
    )


async def _must_touch(conn: asyncpg.Connection, sql: str, *args: object, what: str) -> None:
    """An update of a row that does not exist is an event that can never apply."""
    status = await conn.execute(sql, *args)
    if status.endswith(" 0"):
        raise PermanentEventError(f"{what} does not exist in the read model")


_APPLIERS: dict[type[EventPayload], Applier] = {
    ProjectCreated: _project_created,
    ProjectUpdated: _project_updated,
    ProjectArchived: _project_archived,
    ApiKeyCreated: _apikey_created,
    ApiKeyRevoked: _apikey_revoked,
    UserCreated: _user_created,
    UserEmailAdded: _user_email_added,
    UserEmailVerified: _user_email_verified,
    ServiceAccountCreated: _service_account_created,
    ServiceAccountDeleted: _service_account_deleted,
    ServiceAccountTokenCreated: _service_account_token_created,
    ServiceAccountTokenRevoked: _service_account_token_revoked,
}


@dataclass(eq=False)
class IdentityProjection:
    name: str = "identity"
    schema: str = SCHEMA
    subjects: Sequence[str] | None = ("project.>", "apikey.>", "user.>", "serviceaccount.>")
    tables: Sequence[str] = PROJECTION_TABLES

    async def apply(self, conn: asyncpg.Connection, events: Sequence[Event]) -> None:
        for event in events:
            applier = _APPLIERS.get(type(event.payload))
            if applier is not None:  # a newer event type of these domains: not ours to model
                with event_log_context(event):
                    await applier(conn, event)
