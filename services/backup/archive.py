"""The backup archive's format, and the pure rules around it (no I/O).

An archive is a tar file (``.tar``, or gzip-compressed when its name ends in ``.gz``):

    manifest.json                 what the archive holds, with the SHA-256 of every member
    stream/messages.jsonl         every message of the event stream, in sequence order
    blobs/sha256-<hex>            every evidence blob (SBOMs, archives, scan results)
    tables/<schema>.<table>.csv   state that a replay cannot rebuild (signing keys, …)

The stream is the system of record: every read model is rebuilt from it by replay. What is
not in the stream — blobs (events carry only their digest) and the few tables that are not
projections — travels beside it. Stream sequences are kept exactly (the read models store
them as row versions and cursors), gaps included: :func:`sequence_plan` says, for a restore,
which sequences to publish and which to leave as gaps.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Annotated, Literal

import msgspec

from shared.errors import GatehouseError

FORMAT = "gatehouse-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MESSAGES = "stream/messages.jsonl"
BLOBS_DIR = "blobs"
TABLES_DIR = "tables"
# Tables every service schema has that are bookkeeping of this installation, not state:
# migrations are re-applied; checkpoints, dead letters, retry counts and the record of applied
# commands are rebuilt by the replay.
BOOKKEEPING_TABLES = frozenset(
    {
        "schema_migrations",
        "projection_checkpoint",
        "dead_letter",
        "projection_attempts",
        "applied_commands",
    }
)

Sha256Hex = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]


class ArchiveError(GatehouseError):
    """The archive is unusable, or does not fit the target (a one-line reason)."""

    code, status, title = "backup_unusable", 409, "The backup cannot be used here"


class StoredMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One stream message as archived: enough to publish it again unchanged."""

    seq: int
    subject: str
    headers: dict[str, str] = {}
    data: bytes


class Member(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    sha256: Sha256Hex
    size: int


class StreamPart(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    last_sequence: int
    messages: int
    # Inclusive [first, last] ranges of sequences the stream no longer holds (deleted or
    # purged): a restore leaves the same gaps, so every sequence keeps its number.
    gaps: list[tuple[int, int]] = []


class TablePart(msgspec.Struct, frozen=True, kw_only=True):
    schema: str
    table: str
    columns: list[str]
    rows: int
    member: str


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    format: Literal["gatehouse-backup"] = FORMAT
    format_version: int = FORMAT_VERSION
    backup_id: str
    gatehouse_version: str
    created_at: dt.datetime
    stream: StreamPart
    blob_bucket: str
    blobs: list[str]
    tables: list[TablePart]
    # schema → the newest migration applied when the backup was taken
    migrations: dict[str, int]
    members: list[Member]


def encode_manifest(manifest: Manifest) -> bytes:
    return msgspec.json.format(msgspec.json.encode(manifest), indent=2) + b"\n"


def decode_manifest(raw: bytes) -> Manifest:
    try:
        manifest = msgspec.json.decode(raw, type=Manifest)
    except msgspec.DecodeError as exc:
        raise ArchiveError(f"{MANIFEST} is not a Gatehouse backup manifest: {exc}") from None
    if manifest.format_version > FORMAT_VERSION:
        raise ArchiveError(
            f"the archive has format version {manifest.format_version}; this Gatehouse "
            f"reads up to {FORMAT_VERSION}: restore with a newer Gatehouse"
        )
    return manifest


def blob_member(digest: str) -> str:
    """``sha256:<hex>`` → the member holding that blob."""
    algorithm, _, hexdigest = digest.partition(":")
    if algorithm != "sha256" or len(hexdigest) != 64:
        raise ArchiveError(f"not a blob digest: {digest!r}")
    return f"{BLOBS_DIR}/sha256-{hexdigest}"


def table_member(schema: str, table: str) -> str:
    return f"{TABLES_DIR}/{schema}.{table}.csv"


def unreplayable_tables(
    schema_tables: Iterable[str], projection_tables: Iterable[str]
) -> list[str]:
    """The tables of a schema that a replay cannot rebuild: neither a projection's nor
    bookkeeping. Sorted."""
    rebuilt = set(projection_tables) | BOOKKEEPING_TABLES
    return sorted(set(schema_tables) - rebuilt)


def gaps_of(sequences: Iterable[int], *, last: int) -> list[tuple[int, int]]:
    """Inclusive ranges of 1..``last`` missing from ascending ``sequences``."""
    gaps: list[tuple[int, int]] = []
    expected = 1
    for seq in sequences:
        if seq > expected:
            gaps.append((expected, seq - 1))
        expected = seq + 1
    if expected <= last:
        gaps.append((expected, last))
    return gaps


def sequence_plan(messages: Iterable[StoredMessage], *, last: int) -> Iterator[StoredMessage | int]:
    """For a restore into an empty stream, in order: a message to publish at its own
    sequence, or the number of a sequence to leave as a gap (publish a filler and delete it,
    the only way JetStream lets a sequence number pass unused)."""
    expected = 1
    for message in messages:
        if message.seq < expected:
            raise ArchiveError(f"stream messages out of order at sequence {message.seq}")
        while expected < message.seq:
            yield expected
            expected += 1
        yield message
        expected += 1
    while expected <= last:
        yield expected
        expected += 1


def check_members(manifest: Manifest, digests: dict[str, str]) -> None:
    """Every member the manifest lists is present with its SHA-256 (``digests``: name →
    hex digest of what the archive holds)."""
    for member in manifest.members:
        found = digests.get(member.name)
        if found is None:
            raise ArchiveError(f"the archive lacks {member.name}")
        if found != member.sha256:
            raise ArchiveError(f"{member.name} does not match its SHA-256 in {MANIFEST}")


def check_migrations(archived: dict[str, int], available: dict[str, int]) -> None:
    """A restore needs code that knows every migration the backup's schemas had."""
    newer = sorted(
        f"{schema} (archive {version}, this Gatehouse {available.get(schema, 0)})"
        for schema, version in archived.items()
        if version > available.get(schema, 0)
    )
    if newer:
        raise ArchiveError(
            "the archive comes from a newer Gatehouse; restore with that version or later: "
            + ", ".join(newer)
        )


def sha256_hex(chunks: Sequence[bytes] | Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()
