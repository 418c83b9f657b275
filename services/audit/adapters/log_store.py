"""The audit log in PostgreSQL (``audit.entries``): append, query, export, read for verify."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import asyncpg
import msgspec

from contracts.rpc.audit import AuditEntry, AuditFilters
from services.audit.domain.chain import GENESIS_HASH, Link
from services.audit.domain.entries import EntryColumns, NewEntry

TABLE = "audit.entries"
_ENTRY_COLUMNS = (
    "sequence, event_id, type, aggregate, actor, source, occurred_at, correlation_id, "
    "causation_id, event, prev_hash, hash"
)


class Head(msgspec.Struct, frozen=True):
    sequence: int
    hash: bytes


class StoredEntry(msgspec.Struct, frozen=True, kw_only=True):
    """A row as verification reads it."""

    sequence: int
    columns: EntryColumns
    event: bytes
    prev_hash: bytes
    hash: bytes


async def head(conn: asyncpg.Connection) -> Head:
    """The last entry of the chain (sequence 0 and the genesis hash when the log is empty)."""
    row = await conn.fetchrow(f"SELECT sequence, hash FROM {TABLE} ORDER BY sequence DESC LIMIT 1")
    return Head(0, GENESIS_HASH) if row is None else Head(row["sequence"], bytes(row["hash"]))


async def stored_event_ids(conn: asyncpg.Connection, event_ids: Sequence[str]) -> set[str]:
    rows = await conn.fetch(
        f"SELECT event_id FROM {TABLE} WHERE event_id = ANY($1::text[])", list(event_ids)
    )
    return {row["event_id"] for row in rows}


async def append(
    conn: asyncpg.Connection, entries: Sequence[NewEntry], links: Sequence[Link]
) -> None:
    """One INSERT for the whole batch (column arrays unnested)."""
    if not entries:
        return
    columns = [entry.columns for entry in entries]
    await conn.execute(
        f"INSERT INTO {TABLE} ({_ENTRY_COLUMNS}) "
        "SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], "
        "$6::text[], $7::timestamptz[], $8::text[], $9::text[], $10::text[], $11::bytea[], "
        "$12::bytea[])",
        [entry.sequence for entry in entries],
        [c.event_id for c in columns],
        [c.type for c in columns],
        [c.aggregate for c in columns],
        [c.actor for c in columns],
        [c.source for c in columns],
        [c.occurred_at for c in columns],
        [c.correlation_id for c in columns],
        [c.causation_id for c in columns],
        [entry.event.decode("utf-8") for entry in entries],
        [link.prev_hash for link in links],
        [link.hash for link in links],
    )


def _where(filters: AuditFilters, args: list[Any]) -> list[str]:
    """SQL conditions for ``filters``, their values appended to ``args``."""

    def param(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    clauses = []
    for column in ("actor", "type", "aggregate"):
        value = getattr(filters, column)
        if value is not None:
            clauses.append(f"{column} = {param(value)}")
    if filters.occurred_from is not None:
        clauses.append(f"occurred_at >= {param(filters.occurred_from)}")
    if filters.occurred_to is not None:
        clauses.append(f"occurred_at < {param(filters.occurred_to)}")
    if filters.q is not None:
        clauses.append(f"search @@ websearch_to_tsquery('simple', {param(filters.q)})")
    return clauses


def _sql_where(clauses: list[str]) -> str:
    return f" WHERE {' AND '.join(clauses)}" if clauses else ""


def _entry(row: asyncpg.Record) -> AuditEntry:
    return AuditEntry(
        sequence=row["sequence"],
        event_id=row["event_id"],
        type=row["type"],
        aggregate=row["aggregate"],
        actor=row["actor"],
        source=row["source"],
        occurred_at=row["occurred_at"],
        correlation_id=row["correlation_id"],
        causation_id=row["causation_id"],
        prev_hash=bytes(row["prev_hash"]).hex(),
        hash=bytes(row["hash"]).hex(),
        event=msgspec.Raw(row["event"].encode("utf-8")),
    )


async def query(
    conn: asyncpg.Connection, filters: AuditFilters, *, offset: int, limit: int
) -> tuple[list[AuditEntry], int]:
    """A page of matching entries, newest first, and how many match in all."""
    args: list[Any] = []
    where = _sql_where(_where(filters, args))
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        total = await conn.fetchval(f"SELECT count(*) FROM {TABLE}{where}", *args)
        rows = await conn.fetch(
            f"SELECT {_ENTRY_COLUMNS} FROM {TABLE}{where} ORDER BY sequence DESC "
            f"LIMIT {int(limit)} OFFSET {int(offset)}",
            *args,
        )
    return [_entry(row) for row in rows], int(total)


async def last_sequence(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval(f"SELECT coalesce(max(sequence), 0) FROM {TABLE}"))


async def export_page(
    conn: asyncpg.Connection,
    filters: AuditFilters,
    *,
    after_sequence: int,
    up_to_sequence: int,
    limit: int,
) -> list[AuditEntry]:
    """Matching entries oldest first, after ``after_sequence`` up to ``up_to_sequence``."""
    args: list[Any] = []
    clauses = _where(filters, args)
    args += [after_sequence, up_to_sequence]
    clauses += [f"sequence > ${len(args) - 1}", f"sequence <= ${len(args)}"]
    rows = await conn.fetch(
        f"SELECT {_ENTRY_COLUMNS} FROM {TABLE}{_sql_where(clauses)} ORDER BY sequence "
        f"LIMIT {int(limit)}",
        *args,
    )
    return [_entry(row) for row in rows]


async def count(conn: asyncpg.Connection, filters: AuditFilters, *, up_to_sequence: int) -> int:
    args: list[Any] = []
    clauses = _where(filters, args)
    args.append(up_to_sequence)
    clauses.append(f"sequence <= ${len(args)}")
    return int(await conn.fetchval(f"SELECT count(*) FROM {TABLE}{_sql_where(clauses)}", *args))


async def hash_at(conn: asyncpg.Connection, sequence: int) -> bytes:
    """The stored hash of the entry ``sequence`` (the genesis hash for 0)."""
    if sequence == 0:
        return GENESIS_HASH
    value = await conn.fetchval(f"SELECT hash FROM {TABLE} WHERE sequence = $1", sequence)
    if value is None:
        raise LookupError(f"no audit entry at sequence {sequence}")
    return bytes(value)


async def entries_after(
    conn: asyncpg.Connection, *, after_sequence: int, up_to_sequence: int, limit: int
) -> list[StoredEntry]:
    rows = await conn.fetch(
        f"SELECT {_ENTRY_COLUMNS} FROM {TABLE} WHERE sequence > $1 AND sequence <= $2 "
        f"ORDER BY sequence LIMIT {int(limit)}",
        after_sequence,
        up_to_sequence,
    )
    return [
        StoredEntry(
            sequence=row["sequence"],
            columns=EntryColumns(
                event_id=row["event_id"],
                type=row["type"],
                aggregate=row["aggregate"],
                actor=row["actor"],
                source=row["source"],
                occurred_at=row["occurred_at"].astimezone(dt.UTC),
                correlation_id=row["correlation_id"],
                causation_id=row["causation_id"],
            ),
            event=row["event"].encode("utf-8"),
            prev_hash=bytes(row["prev_hash"]),
            hash=bytes(row["hash"]),
        )
        for row in rows
    ]
