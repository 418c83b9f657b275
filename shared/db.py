"""PostgreSQL: connection pools and per-service schema migrations.

Each service owns one schema (``gateway``, ``audit``, ``release_decision`` …) and an ordered
folder of ``NNNN_name.sql`` files. The kit tables every schema needs (the migration
version table, projection checkpoints, attempts, dead letters and the commands a projection
has seen applied, see ``shared.commands``) are created first, by the kit itself.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import asyncpg

from shared.logging import get_logger

log = get_logger(__name__)

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

KIT_TABLES_SQL = """
CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {schema}.projection_checkpoint (
    projection text PRIMARY KEY,
    stream_sequence bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS {schema}.dead_letter (
    id bigserial PRIMARY KEY,
    projection text NOT NULL,
    stream_sequence bigint NOT NULL,
    subject text NOT NULL,
    event_id text,
    payload bytea NOT NULL,
    error text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (projection, stream_sequence)
);
-- An operator's answer to a dead letter (`gatehouse deadletters retry|drop`): the row stays as
-- the audit trail, only unresolved ones make the service "degraded".
ALTER TABLE {schema}.dead_letter
    ADD COLUMN IF NOT EXISTS retry_requested_at timestamptz,
    ADD COLUMN IF NOT EXISTS resolved_at timestamptz,
    ADD COLUMN IF NOT EXISTS resolution text;
CREATE INDEX IF NOT EXISTS dead_letter_outstanding
    ON {schema}.dead_letter (projection, stream_sequence) WHERE resolved_at IS NULL;
-- Consecutive tries of the batch after ``after_sequence`` (the checkpoint) that did not
-- commit; kept across restarts so that an event which keeps failing "transiently" (or kills
-- the process) reaches the bound and is dead-lettered instead of being retried forever.
CREATE TABLE IF NOT EXISTS {schema}.projection_attempts (
    projection text PRIMARY KEY,
    after_sequence bigint NOT NULL,
    attempts integer NOT NULL,
    last_error text,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {schema}.applied_commands (
    projection text NOT NULL,
    command_id text NOT NULL,
    event_id text NOT NULL,
    event_type text NOT NULL,
    aggregate text NOT NULL,
    stream_sequence bigint NOT NULL,
    PRIMARY KEY (projection, command_id)
);
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(folder: Path) -> list[Migration]:
    found = []
    for path in sorted(folder.glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if not match:
            raise ValueError(f"migration file name must be NNNN_name.sql: {path}")
        found.append(Migration(int(match.group(1)), path.stem, path.read_text()))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"duplicate migration versions in {folder}")
    return found


def _lock_key(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


def advisory_key(text: str) -> int:
    """A stable 64-bit advisory-lock key for a name."""
    return _lock_key(text)


async def migrate(
    conn: asyncpg.Connection, *, schema: str, migrations: list[Migration]
) -> list[int]:
    """Apply pending migrations in order, each in its own transaction; returns the new versions."""
    applied_now: list[int] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _lock_key(f"migrate:{schema}"))
    switched = False
    try:
        owner = await conn.fetchval(
            "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = $1", schema
        )
        if owner is None:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        elif await _should_act_as(conn, owner):
            # An operator's superuser DSN migrating a schema a service role owns: create as
            # the owner, or the service could not read its own new tables.
            await conn.execute(f"SET ROLE {_quote_ident(owner)}")
            switched = True
        await conn.execute(KIT_TABLES_SQL.format(schema=f'"{schema}"'))
        rows = await conn.fetch(f'SELECT version, checksum FROM "{schema}".schema_migrations')
        done = {r["version"]: r["checksum"] for r in rows}
        for m in migrations:
            if m.version in done:
                if done[m.version] != m.checksum:
                    log.warning("migration_changed_after_apply", schema=schema, version=m.version)
                continue
            async with conn.transaction():
                await conn.execute(f'SET LOCAL search_path TO "{schema}", public')
                await conn.execute(m.sql)
                await conn.execute(
                    f'INSERT INTO "{schema}".schema_migrations (version, name, checksum) '
                    "VALUES ($1, $2, $3)",
                    m.version,
                    m.name,
                    m.checksum,
                )
            applied_now.append(m.version)
            log.info("migration_applied", schema=schema, version=m.version, name=m.name)
    finally:
        if switched:
            await conn.execute("RESET ROLE")
        await conn.execute("SELECT pg_advisory_unlock($1)", _lock_key(f"migrate:{schema}"))
    return applied_now


async def _should_act_as(conn: asyncpg.Connection, owner: str) -> bool:
    current = await conn.fetchval("SELECT current_user")
    if owner == current:
        return False
    return bool(await conn.fetchval("SELECT pg_has_role(current_user, $1, 'MEMBER')", owner))


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def service_role(schema: str) -> str:
    """The PostgreSQL role a service connects as: it owns its schema and nothing else."""
    return f"gatehouse_{schema}"


def with_credentials(dsn: str, user: str, password: str) -> str:
    """The same DSN connecting as ``user`` with ``password``."""
    parts = urlsplit(dsn)
    host = parts.netloc.rsplit("@", 1)[-1]
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    url = f"{parts.scheme}://{netloc}{parts.path}"
    if parts.query:
        url += f"?{parts.query}"
    return url


async def ensure_service_role(
    conn: asyncpg.Connection, *, schema: str, role: str, password: str
) -> None:
    """Create (or re-password) ``role`` and make it the owner of ``schema`` and of everything
    already in it; nobody else gets any privilege there. Run as a superuser (or the owner of
    the database) on the service's database. Other schemas stay closed to ``role``: a schema
    grants nothing to PUBLIC unless told to."""
    quoted_role = _quote_ident(role)
    quoted_schema = _quote_ident(schema)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_key(f"role:{role}"))
        exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
        verb = "ALTER" if exists else "CREATE"
        # A utility statement takes no parameters: the password is quoted as a literal.
        literal = "'" + password.replace("'", "''") + "'"
        await conn.execute(
            f"{verb} ROLE {quoted_role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
            f"PASSWORD {literal}"
        )
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted_schema}")
        await conn.execute(f"ALTER SCHEMA {quoted_schema} OWNER TO {quoted_role}")
        await conn.execute(f"REVOKE ALL ON SCHEMA {quoted_schema} FROM PUBLIC")
        # Objects made before the role existed (an installation that ran as one user).
        for statement in await _ownership_statements(conn, schema, quoted_role):
            await conn.execute(statement)
        await conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        # Search's trigram indexes need pg_trgm, which a service role (no CREATE on the
        # database) may use but not create; without the contrib module search matches
        # substrings only (shared/search.py).
        if await conn.fetchval("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'"):
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
        database = await conn.fetchval("SELECT current_database()")
        await conn.execute(f"GRANT CONNECT ON DATABASE {_quote_ident(database)} TO {quoted_role}")


async def provision_service_roles(admin_dsn: str, schemas: Mapping[str, str]) -> dict[str, str]:
    """For ``{service: schema}``, a role per service with a fresh random password, owning its
    schema; returns ``{service: its own DSN}``. ``admin_dsn`` is a superuser's."""
    await ensure_database(admin_dsn)
    dsns: dict[str, str] = {}
    conn = await asyncpg.connect(admin_dsn)
    try:
        for service, schema in schemas.items():
            role = service_role(schema)
            password = secrets.token_urlsafe(24)
            await ensure_service_role(conn, schema=schema, role=role, password=password)
            dsns[service] = with_credentials(admin_dsn, role, password)
    finally:
        await conn.close()
    return dsns


async def _ownership_statements(conn: asyncpg.Connection, schema: str, role: str) -> list[str]:
    rows = await conn.fetch(
        """
        SELECT format('ALTER TABLE %I.%I OWNER TO ', n.nspname, c.relname) AS sql
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
        UNION ALL
        -- Sequences a column owns follow their table; only free-standing ones are moved.
        SELECT format('ALTER SEQUENCE %I.%I OWNER TO ', n.nspname, c.relname)
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND c.relkind = 'S'
           AND NOT EXISTS (SELECT 1 FROM pg_depend d
                            WHERE d.objid = c.oid AND d.deptype IN ('a', 'i'))
        UNION ALL
        SELECT format('ALTER ROUTINE %s OWNER TO ', p.oid::regprocedure)
          FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = $1
        UNION ALL
        SELECT format('ALTER TYPE %I.%I OWNER TO ', n.nspname, t.typname)
          FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
         WHERE n.nspname = $1 AND t.typtype IN ('e', 'd', 'r', 'm')
        """,
        schema,
    )
    return [row["sql"] + role for row in rows]


async def at_head(conn: asyncpg.Connection, *, schema: str, migrations: list[Migration]) -> bool:
    exists = await conn.fetchval("SELECT to_regclass($1)", f'"{schema}".schema_migrations')
    if exists is None:
        return False
    versions = {
        r["version"] for r in await conn.fetch(f'SELECT version FROM "{schema}".schema_migrations')
    }
    return all(m.version in versions for m in migrations)


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 10, **kwargs: Any
) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init_connection, **kwargs
    )
    assert pool is not None
    return pool


async def connect(dsn: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(dsn)
    await _init_connection(conn)
    return conn


def with_database(dsn: str, database: str) -> str:
    """The same DSN naming another database; keeps ``postgresql:///db?host=/socket`` forms
    intact (``urlunsplit`` would drop the empty authority and break them)."""
    parts = urlsplit(dsn)
    url = f"{parts.scheme}://{parts.netloc}/{quote(database, safe='')}"
    if parts.query:
        url += f"?{parts.query}"
    if parts.fragment:
        url += f"#{parts.fragment}"
    return url


def database_name(dsn: str) -> str:
    return unquote(urlsplit(dsn).path.lstrip("/")) or "postgres"


async def ensure_database(dsn: str) -> None:
    """Create the database named in ``dsn`` if it does not exist (connects to ``postgres``)."""
    name = database_name(dsn)
    conn = await asyncpg.connect(with_database(dsn, "postgres"))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
                # Another service created it between our check and CREATE (services start
                # together); the catalog's unique index reports the race as a violation.
                pass
    finally:
        await conn.close()
