"""SQL of the signatures part: users and their e-mails, signing keys, the verification cache
(projection rows), and the index of signed commits and the verification queue (kept state).

Repos and logins are keyed lower-cased, as every read model keys them; e-mails too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, TypeAlias

import asyncpg
import msgspec

SCHEMA = "signature_verifier"
JOBS_TABLE = f"{SCHEMA}.signature_jobs"
PROJECTION_TABLES = (
    "users",
    "user_emails",
    "gpg_keys",
    "gpg_key_ids",
    "ssh_keys",
    "verifications",
    "key_set",
)
# Rebuilt from the mirrors on disk or recording how the work went, not from the stream.
KEPT_TABLES = (
    "signed_commits",
    "indexed_repos",
    "signature_jobs",
    "key_backfills",
    "reverify_runs",
)

Queryable: TypeAlias = asyncpg.Pool | asyncpg.Connection


def key_of(text: str) -> str:
    return text.lower()


# ---- users ---------------------------------------------------------------------------------
async def upsert_user(conn: asyncpg.Connection, login: str, name: str) -> None:
    await conn.execute(
        "INSERT INTO signature_verifier.users (login_key, login, name) VALUES ($1, $2, $3) "
        "ON CONFLICT (login_key) DO UPDATE SET login = EXCLUDED.login, name = EXCLUDED.name",
        key_of(login),
        login,
        name,
    )


async def upsert_email(conn: asyncpg.Connection, login: str, email: str, *, verified: bool) -> bool:
    """Add (or move) an e-mail; True when it became verified by this call."""
    before = await conn.fetchval(
        "SELECT verified FROM signature_verifier.user_emails WHERE email_key = $1 "
        "AND login_key = $2",
        key_of(email),
        key_of(login),
    )
    await conn.execute(
        "INSERT INTO signature_verifier.user_emails (email_key, login_key, email, verified) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT (email_key) DO UPDATE SET "
        "login_key = EXCLUDED.login_key, email = EXCLUDED.email, "
        "verified = EXCLUDED.verified OR (user_emails.login_key = EXCLUDED.login_key "
        "AND user_emails.verified)",
        key_of(email),
        key_of(login),
        email,
        verified,
    )
    return verified and not before


async def verify_email(conn: asyncpg.Connection, login: str, email: str) -> bool:
    """Mark an e-mail of ``login`` verified (adding it when unknown); True when it changed."""
    return await upsert_email(conn, login, email, verified=True)


async def user_exists(db: Queryable, login: str) -> bool:
    return bool(
        await db.fetchval(
            "SELECT true FROM signature_verifier.users WHERE login_key = $1", key_of(login)
        )
    )


class Email(msgspec.Struct, frozen=True):
    email: str
    verified: bool


async def emails_of(db: Queryable, login: str) -> list[Email]:
    rows = await db.fetch(
        "SELECT email, verified FROM signature_verifier.user_emails WHERE login_key = $1 "
        "ORDER BY email_key",
        key_of(login),
    )
    return [Email(r["email"], r["verified"]) for r in rows]


async def bump_key_set(conn: asyncpg.Connection, sequence: int) -> None:
    await conn.execute(
        "INSERT INTO signature_verifier.key_set (singleton, version) VALUES (true, $1) "
        "ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version",
        sequence,
    )


async def key_set_version(db: Queryable) -> int:
    return int(await db.fetchval("SELECT version FROM signature_verifier.key_set") or 0)


# ---- keys ----------------------------------------------------------------------------------
async def insert_gpg_key(
    conn: asyncpg.Connection,
    *,
    key_store_id: int,
    login: str,
    key_id: str,
    key_ids: Sequence[str],
    name: str | None,
    armored: str,
    view: dict[str, Any],
    added_at: dt.datetime,
) -> bool:
    inserted = await conn.fetchval(
        "INSERT INTO signature_verifier.gpg_keys (id, login_key, login, key_id, name, armored, "
        "view, added_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING "
        "RETURNING true",
        key_store_id,
        key_of(login),
        login,
        key_id,
        name,
        armored,
        view,
        added_at,
    )
    if inserted:
        await conn.executemany(
            "INSERT INTO signature_verifier.gpg_key_ids (key_id, gpg_key) VALUES ($1, $2) "
            "ON CONFLICT DO NOTHING",
            [(k, key_store_id) for k in key_ids],
        )
    return bool(inserted)


async def insert_ssh_key(
    conn: asyncpg.Connection,
    *,
    key_store_id: int,
    login: str,
    title: str,
    key: str,
    fingerprint: str,
    added_at: dt.datetime,
) -> bool:
    inserted = await conn.fetchval(
        "INSERT INTO signature_verifier.ssh_keys (id, login_key, login, title, key, "
        "fingerprint, added_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING "
        "RETURNING true",
        key_store_id,
        key_of(login),
        login,
        title,
        key,
        fingerprint,
        added_at,
    )
    return bool(inserted)


async def revoke_key(
    conn: asyncpg.Connection, table: str, key_store_id: int, *, at: dt.datetime
) -> bool:
    assert table in ("gpg_keys", "ssh_keys")
    revoked = await conn.fetchval(
        f"UPDATE signature_verifier.{table} SET revoked_at = $2 "
        "WHERE id = $1 AND revoked_at IS NULL RETURNING true",
        key_store_id,
        at,
    )
    return bool(revoked)


async def uploaded_key_ids(db: Queryable) -> list[str]:
    """Every key id (OpenPGP ids and SSH fingerprints) of a key not revoked."""
    rows = await db.fetch(
        "SELECT i.key_id AS id FROM signature_verifier.gpg_key_ids i "
        "JOIN signature_verifier.gpg_keys k ON k.id = i.gpg_key WHERE k.revoked_at IS NULL "
        "UNION ALL SELECT fingerprint FROM signature_verifier.ssh_keys WHERE revoked_at IS NULL"
    )
    return [r["id"] for r in rows]


async def gpg_key_row(db: Queryable, key_store_id: int) -> asyncpg.Record | None:
    return await db.fetchrow(
        "SELECT id, login, login_key, view, added_at, revoked_at FROM signature_verifier.gpg_keys "
        "WHERE id = $1",
        key_store_id,
    )


async def ssh_key_row(db: Queryable, key_store_id: int) -> asyncpg.Record | None:
    return await db.fetchrow(
        "SELECT id, login, login_key, title, key, fingerprint, added_at, revoked_at "
        "FROM signature_verifier.ssh_keys WHERE id = $1",
        key_store_id,
    )


async def gpg_key_page(
    db: Queryable, login: str, *, offset: int, limit: int
) -> list[asyncpg.Record]:
    return await db.fetch(  # type: ignore[no-any-return]
        "SELECT id, login, login_key, view, added_at, revoked_at FROM signature_verifier.gpg_keys "
        "WHERE login_key = $1 AND revoked_at IS NULL ORDER BY id OFFSET $2 LIMIT $3",
        key_of(login),
        offset,
        limit,
    )


async def ssh_key_page(
    db: Queryable, login: str, *, offset: int, limit: int
) -> list[asyncpg.Record]:
    return await db.fetch(  # type: ignore[no-any-return]
        "SELECT id, login, login_key, title, key, fingerprint, added_at, revoked_at "
        "FROM signature_verifier.ssh_keys WHERE login_key = $1 AND revoked_at IS NULL "
        "ORDER BY id OFFSET $2 LIMIT $3",
        key_of(login),
        offset,
        limit,
    )


async def gpg_key_ids_of(db: Queryable, key_store_id: int) -> list[str]:
    rows = await db.fetch(
        "SELECT key_id FROM signature_verifier.gpg_key_ids WHERE gpg_key = $1", key_store_id
    )
    return [r["key_id"] for r in rows]


class KeyMaterial(msgspec.Struct, frozen=True, kw_only=True):
    """An uploaded key as the verifier loads it: what to parse, whose it is."""

    key_store_id: int
    kind: str  # openpgp | ssh
    login: str
    text: str  # the armoured key, or the SSH public key line
    key_ids: tuple[str, ...]
    emails: tuple[tuple[str, bool], ...]


async def key_material(db: Queryable) -> list[KeyMaterial]:
    """Every key not revoked, with its owner's e-mails, in id order."""
    rows = await db.fetch(
        "SELECT k.id, 'openpgp' AS kind, k.login, k.login_key, k.armored AS text, "
        "ARRAY(SELECT key_id FROM signature_verifier.gpg_key_ids i WHERE i.gpg_key = k.id "
        "ORDER BY key_id) AS key_ids FROM signature_verifier.gpg_keys k WHERE revoked_at IS NULL "
        "UNION ALL SELECT s.id, 'ssh', s.login, s.login_key, s.key, ARRAY[s.fingerprint] "
        "FROM signature_verifier.ssh_keys s WHERE revoked_at IS NULL ORDER BY id"
    )
    emails = await db.fetch(
        "SELECT login_key, email, verified FROM signature_verifier.user_emails ORDER BY email_key"
    )
    by_login: dict[str, list[tuple[str, bool]]] = {}
    for e in emails:
        by_login.setdefault(e["login_key"], []).append((e["email"], e["verified"]))
    return [
        KeyMaterial(
            key_store_id=r["id"],
            kind=r["kind"],
            login=r["login"],
            text=r["text"],
            key_ids=tuple(r["key_ids"]),
            emails=tuple(by_login.get(r["login_key"], ())),
        )
        for r in rows
    ]


# ---- verifications (projection of commit.verified) -----------------------------------------
async def upsert_verification(
    conn: asyncpg.Connection,
    *,
    repo: str,
    oid: str,
    verified: bool,
    reason: str,
    key_id: str | None,
    key_store_id: int | None,
    signer: str | None,
    signature_kind: str | None,
    verified_at: dt.datetime | None,
    event_id: str,
) -> None:
    await conn.execute(
        "INSERT INTO signature_verifier.verifications (repo_key, oid, verified, reason, key_id, "
        "key_store_id, signer, signature_kind, verified_at, event_id) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (repo_key, oid) DO UPDATE "
        "SET verified = EXCLUDED.verified, reason = EXCLUDED.reason, key_id = EXCLUDED.key_id, "
        "key_store_id = EXCLUDED.key_store_id, signer = EXCLUDED.signer, "
        "signature_kind = EXCLUDED.signature_kind, verified_at = EXCLUDED.verified_at, "
        "event_id = EXCLUDED.event_id",
        key_of(repo),
        oid.lower(),
        verified,
        reason,
        key_id,
        key_store_id,
        signer,
        signature_kind,
        verified_at,
        event_id,
    )


class Stamp(msgspec.Struct, frozen=True):
    """What the cache says of a commit: compared with a new verdict before publishing."""

    reason: str
    key_store_id: int | None
    key_id: str | None


async def stamps(db: Queryable, repo_key: str, oids: Sequence[str]) -> dict[str, Stamp]:
    rows = await db.fetch(
        "SELECT oid, reason, key_store_id, key_id FROM signature_verifier.verifications "
        "WHERE repo_key = $1 AND oid = ANY($2::text[])",
        repo_key,
        list(oids),
    )
    return {r["oid"]: Stamp(r["reason"], r["key_store_id"], r["key_id"]) for r in rows}
