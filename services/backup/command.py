"""`gatehouse backup ARCHIVE` and `gatehouse restore ARCHIVE`: the I/O around :mod:`.archive`.

Backup reads, and never changes, the installation it is pointed at: the event stream up to
the sequence it found at the start, every blob, the tables a replay cannot rebuild (each
service declares them: ``ServiceDefinition.unreplayable_tables``) in one repeatable-read
snapshot per database. The archive is written beside its final name and renamed into place
only once complete, readable by its owner alone (it holds the attestation signing key).

Restore needs an empty installation (no event in the stream, no row in any service table):
it checks the archive whole first, then publishes the messages at their own sequences,
stores the blobs, applies migrations, copies the kept tables back and rebuilds every read
model by replay from sequence 0. The services must be stopped meanwhile.

Both publish an event (``backup.completed`` / ``backup.failed`` / ``backup.restored``) so
that ``/health/backup`` and the audit log know.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import hashlib
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import msgspec
import nats.js.errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from contracts.events.operations import BackupCompleted, BackupFailed, BackupRestored
from contracts.ids import uuid7
from services.backup.archive import (
    BLOBS_DIR,
    MANIFEST,
    MESSAGES,
    ArchiveError,
    Manifest,
    Member,
    StoredMessage,
    StreamPart,
    TablePart,
    blob_member,
    check_members,
    check_migrations,
    decode_manifest,
    encode_manifest,
    gaps_of,
    sequence_plan,
    table_member,
)
from services.registry import SERVICES, definition
from services.supervisor import EMBEDDED_DATABASE, StackError, exclusive_data_dir
from shared.blobs import BlobStore
from shared.bus import Bus
from shared.db import connect, create_pool, ensure_database, load_migrations
from shared.embedded import EmbeddedNats, EmbeddedPostgres, free_port
from shared.logging import configure_logging
from shared.service import VERSION, Runtime
from shared.settings import Settings, load_settings

FETCH_BATCH = 1_000
FETCH_TIMEOUT_SECONDS = 5.0
COPY_CHUNK = 1 << 20
# The subject of the placeholder a restore publishes, then deletes, to leave a gap.
GAP_SUBJECT = "backup.gap"
SYSTEM_ACTOR = "system"


@dataclass(frozen=True)
class Console:
    quiet: bool = False

    def say(self, message: str) -> None:
        if not self.quiet:
            print(message, flush=True)


# ---- backup ------------------------------------------------------------------------------------


async def backup(settings: Settings, archive: Path, *, console: Console) -> BackupCompleted:
    """Write ``archive``; publishes ``backup.completed``, or ``backup.failed`` and raises."""
    started = dt.datetime.now(dt.UTC)
    backup_id = str(uuid7())
    bus = await Bus.connect(settings, name="gatehouse-backup")
    try:
        try:
            completed = await _write_archive(bus, settings, archive, backup_id, started, console)
        except Exception as exc:
            failed = BackupFailed(
                backup_id=backup_id,
                archive=str(archive),
                error=f"{type(exc).__name__}: {exc}"[:2000],
                started_at=started,
                failed_at=dt.datetime.now(dt.UTC),
            )
            with contextlib.suppress(Exception):
                await bus.publish(failed, aggregate=f"backup:{backup_id}", actor=SYSTEM_ACTOR)
            raise
        await bus.publish(completed, aggregate=f"backup:{backup_id}", actor=SYSTEM_ACTOR)
        return completed
    finally:
        await bus.close()


async def _write_archive(
    bus: Bus,
    settings: Settings,
    archive: Path,
    backup_id: str,
    started: dt.datetime,
    console: Console,
) -> BackupCompleted:
    staging = _private_dir(prefix=".gatehouse-backup-", beside=archive)
    partial = archive.with_name(archive.name + ".partial")
    try:
        try:
            info = await bus.js.stream_info(bus.stream)
        except nats.js.errors.NotFoundError:
            raise ArchiveError(f"there is no stream {bus.stream}: nothing to back up") from None
        last = int(info.state.last_seq)
        console.say(f"  stream      {bus.stream}: sequences up to {last}")
        stream_part = await _dump_stream(bus, staging, last=last)
        console.say(f"              {stream_part.messages} messages")
        blobs = await _dump_blobs(bus, staging)
        console.say(f"  blobs       {len(blobs)}")
        tables, migrations = await _dump_tables(settings, staging)
        console.say(f"  tables      {', '.join(f'{t.schema}.{t.table}' for t in tables) or '-'}")
        members = [_member(staging, name) for name in _member_names(stream_part, blobs, tables)]
        manifest = Manifest(
            backup_id=backup_id,
            gatehouse_version=VERSION,
            created_at=started,
            stream=stream_part,
            blob_bucket=f"{bus.stream}_BLOBS",
            blobs=blobs,
            tables=tables,
            migrations=migrations,
            members=members,
        )
        (staging / MANIFEST).write_bytes(encode_manifest(manifest))
        _pack(staging, partial, [MANIFEST, *(m.name for m in members)])
        os.replace(partial, archive)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        partial.unlink(missing_ok=True)
    written = _member(archive.parent, archive.name)
    return BackupCompleted(
        backup_id=backup_id,
        archive=str(archive),
        sha256=written.sha256,
        size_bytes=written.size,
        last_sequence=stream_part.last_sequence,
        events=stream_part.messages,
        blobs=len(blobs),
        tables=[f"{t.schema}.{t.table}" for t in tables],
        started_at=started,
        finished_at=dt.datetime.now(dt.UTC),
    )


def _private_dir(*, prefix: str, beside: Path | None) -> Path:
    """A new folder only we can read (archives hold the signing key); next to ``beside``
    (same file system, so the finished archive is renamed into place), else in the temp dir."""
    if beside is not None:
        beside.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=prefix, dir=beside.parent if beside else None))
    staging.chmod(0o700)
    return staging


async def _dump_stream(bus: Bus, staging: Path, *, last: int) -> StreamPart:
    target = staging / MESSAGES
    target.parent.mkdir(parents=True)
    sequences: list[int] = []
    encoder = msgspec.json.Encoder()
    with target.open("wb") as out:
        async for message in _read_stream(bus, last=last):
            out.write(encoder.encode(message))
            out.write(b"\n")
            sequences.append(message.seq)
    return StreamPart(
        name=bus.stream,
        last_sequence=last,
        messages=len(sequences),
        gaps=gaps_of(sequences, last=last),
    )


async def _read_stream(bus: Bus, *, last: int) -> AsyncIterator[StoredMessage]:
    """Every message up to ``last``, in order, through a consumer of our own (no acks)."""
    if last == 0:
        return
    durable = f"backup_{uuid7().hex}"
    await bus.js.add_consumer(
        bus.stream,
        ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.ALL,
            inactive_threshold=300.0,
            description="gatehouse backup",
        ),
    )
    sub = await bus.js.pull_subscribe_bind(durable=durable, stream=bus.stream)
    try:
        seq = 0
        while seq < last:
            try:
                msgs = await sub.fetch(FETCH_BATCH, timeout=FETCH_TIMEOUT_SECONDS)
            except TimeoutError:
                # Nothing more to deliver: the sequences up to ``last`` left are gaps.
                if int((await sub.consumer_info()).num_pending or 0) == 0:
                    return
                continue
            for msg in msgs:
                seq = int(msg.metadata.sequence.stream)
                if seq > last:
                    return
                yield StoredMessage(
                    seq=seq, subject=msg.subject, headers=dict(msg.headers or {}), data=msg.data
                )
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
        with contextlib.suppress(Exception):
            await bus.js.delete_consumer(bus.stream, durable)


async def _dump_blobs(bus: Bus, staging: Path) -> list[str]:
    store = await BlobStore.open(bus)
    digests = sorted(await store.digests())
    (staging / BLOBS_DIR).mkdir()
    for digest in digests:
        (staging / blob_member(digest)).write_bytes(await store.get(digest))
    return digests


async def _dump_tables(settings: Settings, staging: Path) -> tuple[list[TablePart], dict[str, int]]:
    """The tables no replay rebuilds, in one repeatable-read snapshot; schema → migration."""
    parts: list[TablePart] = []
    migrations: dict[str, int] = {}
    (staging / "tables").mkdir()
    conn = await connect(settings.database_url)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            for name in SERVICES:
                service = definition(name)
                schema = service.schema
                if not await _schema_exists(conn, schema):
                    continue
                migrations[schema] = int(
                    await conn.fetchval(
                        f'SELECT coalesce(max(version), 0) FROM "{schema}".schema_migrations'
                    )
                )
                for table in service.unreplayable_tables:
                    columns = await _columns(conn, schema, table)
                    member = table_member(schema, table)
                    with (staging / member).open("wb") as out:
                        status = await conn.copy_from_table(
                            table,
                            schema_name=schema,
                            columns=columns,
                            output=out,
                            format="csv",
                            header=True,
                        )
                    rows = int(str(status).rsplit(" ", 1)[-1])
                    parts.append(
                        TablePart(
                            schema=schema, table=table, columns=columns, rows=rows, member=member
                        )
                    )
    finally:
        await conn.close()
    return parts, migrations


async def _schema_exists(conn: asyncpg.Connection, schema: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM information_schema.schemata WHERE schema_name = $1)",
            schema,
        )
    )


async def _columns(conn: asyncpg.Connection, schema: str, table: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
        schema,
        table,
    )
    if not rows:
        raise ArchiveError(f"{schema}.{table} does not exist: run `gatehouse migrate` first")
    return [row["column_name"] for row in rows]


def _member_names(stream: StreamPart, blobs: list[str], tables: list[TablePart]) -> list[str]:
    return [MESSAGES, *(blob_member(d) for d in blobs), *(t.member for t in tables)]


def _member(staging: Path, name: str) -> Member:
    path = staging / name
    return Member(name=name, sha256=_file_sha256(path), size=path.stat().st_size)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(COPY_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _pack(staging: Path, target: Path, names: list[str]) -> None:
    mode = "w:gz" if target.name.removesuffix(".partial").endswith(".gz") else "w"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode=mode) as tar:  # type: ignore[call-overload]
        for name in names:
            tar.add(staging / name, arcname=name, recursive=False)
        raw.flush()
        os.fsync(raw.fileno())


# ---- restore -----------------------------------------------------------------------------------


async def restore(settings: Settings, archive: Path, *, console: Console) -> BackupRestored:
    staging = _private_dir(prefix=".gatehouse-restore-", beside=None)
    try:
        manifest = _unpack(archive, staging)
        check_migrations(manifest.migrations, _available_migrations())
        console.say(
            f"  archive     {manifest.backup_id} of {manifest.created_at:%Y-%m-%d %H:%M:%S} UTC: "
            f"{manifest.stream.messages} events, {len(manifest.blobs)} blobs"
        )
        await _check_empty(settings)
        bus = await Bus.connect(settings, name="gatehouse-restore")
        try:
            await _restore_stream(bus, manifest, staging)
            console.say(f"  stream      {manifest.stream.last_sequence} sequences restored")
            await _restore_blobs(bus, manifest, staging)
            console.say(f"  blobs       {len(manifest.blobs)} restored")
            await _restore_tables(settings, manifest, staging)
            await _replay_all(settings, console)
            restored = BackupRestored(
                backup_id=manifest.backup_id,
                sha256=_file_sha256(archive),
                last_sequence=manifest.stream.last_sequence,
                events=manifest.stream.messages,
                blobs=len(manifest.blobs),
            )
            await bus.publish(
                restored, aggregate=f"backup:{manifest.backup_id}", actor=SYSTEM_ACTOR
            )
            return restored
        finally:
            await bus.close()
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _unpack(archive: Path, staging: Path) -> Manifest:
    """Extract the members the manifest names (nothing else, no path of the archive's own
    choosing), checking each one's SHA-256 before anything is restored."""
    try:
        tar = tarfile.open(archive, mode="r:*")
    except (OSError, tarfile.TarError) as exc:
        raise ArchiveError(f"{archive} is not a readable tar archive: {exc}") from None
    with tar:
        try:
            raw = tar.extractfile(MANIFEST)
        except KeyError:
            raise ArchiveError(f"{archive} has no {MANIFEST}: not a Gatehouse backup") from None
        if raw is None:
            raise ArchiveError(f"{MANIFEST} in {archive} is not a file")
        manifest = decode_manifest(raw.read())
        digests: dict[str, str] = {}
        for member in manifest.members:
            try:
                source = tar.extractfile(member.name)
            except KeyError:
                continue  # reported by check_members
            if source is None:
                continue
            target = staging / member.name
            if not target.resolve().is_relative_to(staging.resolve()):
                raise ArchiveError(f"refusing member {member.name!r} outside the archive root")
            target.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            with target.open("wb") as out:
                while chunk := source.read(COPY_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            digests[member.name] = digest.hexdigest()
        check_members(manifest, digests)
    return manifest


def _available_migrations() -> dict[str, int]:
    available: dict[str, int] = {}
    for name in SERVICES:
        service = definition(name)
        versions = [m.version for m in load_migrations(service.migrations_dir)]
        available[service.schema] = max(versions, default=0)
    return available


async def _check_empty(settings: Settings) -> None:
    """Refuse a target that holds anything: a restore never merges into live data."""
    await ensure_database(settings.database_url)
    conn = await connect(settings.database_url)
    try:
        for name in SERVICES:
            schema = definition(name).schema
            if not await _schema_exists(conn, schema):
                continue
            tables = await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 "
                "AND table_type = 'BASE TABLE' AND table_name <> 'schema_migrations'",
                schema,
            )
            for row in tables:
                table = row["table_name"]
                if await conn.fetchval(f'SELECT EXISTS (SELECT 1 FROM "{schema}"."{table}")'):
                    raise ArchiveError(
                        f"the target database is not empty ({schema}.{table} has rows): "
                        "restore into a new installation"
                    )
    finally:
        await conn.close()
    bus = await Bus.connect(settings, name="gatehouse-restore-check")
    try:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            info = await bus.js.stream_info(bus.stream)
            if int(info.state.last_seq) > 0:
                raise ArchiveError(
                    f"the target stream {bus.stream} already holds events: restore into a new "
                    "installation"
                )
    finally:
        await bus.close()


async def _restore_stream(bus: Bus, manifest: Manifest, staging: Path) -> None:
    # A stream that exists but never held a message is replaced: its sequence must start at 1.
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await bus.js.delete_stream(bus.stream)
    await bus.ensure_stream()
    info = await bus.js.stream_info(bus.stream)
    subjects = list(info.config.subjects or [])
    archived = {message.subject.split(".", 1)[0] for message in _messages(staging)}
    missing = sorted(f"{domain}.>" for domain in archived if f"{domain}.>" not in subjects)
    if missing:  # a domain this Gatehouse no longer publishes: its events still replay
        info.config.subjects = subjects + missing
        await bus.js.update_stream(info.config)
    for item in sequence_plan(_messages(staging), last=manifest.stream.last_sequence):
        if isinstance(item, StoredMessage):
            ack = await bus.js.publish(
                item.subject, item.data, stream=bus.stream, headers=item.headers or None
            )
            expected = item.seq
        else:
            ack = await bus.js.publish(GAP_SUBJECT, b"", stream=bus.stream)
            expected = item
        if int(ack.seq) != expected:
            raise ArchiveError(
                f"the stream answered sequence {ack.seq} where the archive has {expected} "
                "(a duplicate Nats-Msg-Id, or another publisher): the restore stopped"
            )
        if not isinstance(item, StoredMessage):
            await bus.js.delete_msg(bus.stream, expected)


def _messages(staging: Path) -> Iterator[StoredMessage]:
    decoder = msgspec.json.Decoder(StoredMessage)
    with (staging / MESSAGES).open("rb") as handle:
        for line in handle:
            if line.strip():
                yield decoder.decode(line)


async def _restore_blobs(bus: Bus, manifest: Manifest, staging: Path) -> None:
    store = await BlobStore.open(bus)
    for digest in manifest.blobs:
        stored = await store.put((staging / blob_member(digest)).read_bytes())
        if stored != digest:
            raise ArchiveError(f"blob {digest} does not match its content")


async def _restore_tables(settings: Settings, manifest: Manifest, staging: Path) -> None:
    """Migrate every schema, then copy the kept tables back."""
    for name in SERVICES:
        runtime = Runtime(definition(name), settings.with_(service=name))
        runtime.pool = await create_pool(settings.database_url, min_size=1, max_size=2)
        try:
            await runtime.migrate()
        finally:
            await runtime.pool.close()
    conn = await connect(settings.database_url)
    try:
        async with conn.transaction():
            for part in manifest.tables:
                with (staging / part.member).open("rb") as source:
                    await conn.copy_to_table(
                        part.table,
                        schema_name=part.schema,
                        columns=part.columns,
                        source=source,
                        format="csv",
                        header=True,
                    )
    finally:
        await conn.close()


async def _replay_all(settings: Settings, console: Console) -> None:
    for name in SERVICES:
        runtime = Runtime(definition(name), settings.with_(service=name))
        await runtime.start(serve=False)
        try:
            for projection, runner in runtime.runners.items():
                started = time.monotonic()
                handled = await runner.replay()
                console.say(
                    f"  replayed    {name}.{projection}: {handled} events "
                    f"in {time.monotonic() - started:.1f}s"
                )
        finally:
            await runtime.stop()


# ---- the command -------------------------------------------------------------------------------


@contextlib.contextmanager
def embedded_servers(data_dir: Path) -> Iterator[tuple[str, str]]:
    """The NATS and PostgreSQL of a stopped `gatehouse up --data-dir DIR`, for the command's
    duration, on free ports: (nats_url, database_url)."""
    try:
        with exclusive_data_dir(data_dir):  # never beside a running `gatehouse up`
            nats_server = EmbeddedNats(data_dir, port=free_port())
            postgres = EmbeddedPostgres(data_dir, port=free_port())
            nats_server.start()
            try:
                postgres.start()
                try:
                    yield nats_server.url, postgres.url(EMBEDDED_DATABASE)
                finally:
                    postgres.stop()
            finally:
                nats_server.stop()
    except StackError as exc:
        raise ArchiveError(str(exc)) from None


def _settings(args: argparse.Namespace, stack: contextlib.ExitStack) -> Settings:
    if args.data_dir is None:
        return load_settings(service="backup")
    nats_url, database_url = stack.enter_context(embedded_servers(Path(args.data_dir)))
    return load_settings(service="backup", nats_url=nats_url, database_url=database_url)


def _cmd_backup(args: argparse.Namespace) -> int:
    configure_logging(service="backup", level="warning")
    console = Console(quiet=args.quiet)
    with contextlib.ExitStack() as stack:
        settings = _settings(args, stack)
        console.say(f"gatehouse backup → {args.archive}")
        done = asyncio.run(backup(settings, Path(args.archive).absolute(), console=console))
    console.say(
        f"wrote {done.archive} ({done.size_bytes} bytes, sha256 {done.sha256}): "
        f"{done.events} events up to sequence {done.last_sequence}, {done.blobs} blobs"
    )
    return 0


def _cmd_restore(args: argparse.Namespace) -> int:
    configure_logging(service="restore", level="warning")
    console = Console(quiet=args.quiet)
    with contextlib.ExitStack() as stack:
        settings = _settings(args, stack)
        console.say(f"gatehouse restore ← {args.archive}")
        done = asyncio.run(restore(settings, Path(args.archive), console=console))
    console.say(
        f"restored {done.events} events up to sequence {done.last_sequence} and "
        f"{done.blobs} blobs; every read model was rebuilt. Start the services now."
    )
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    where = (
        "the installation named by GATEHOUSE_NATS_URL and GATEHOUSE_DATABASE_URL, or with "
        "--data-dir the embedded servers of a stopped `gatehouse up --data-dir DIR`"
    )
    b = sub.add_parser(
        "backup",
        help="write a consistent backup archive (events, blobs, kept tables)",
        description=f"Write a backup archive of {where}. Safe while the services run.",
    )
    b.add_argument("archive", help="the archive to write (.tar, or .tar.gz to compress)")
    b.add_argument("--data-dir", default=None, help="a stopped embedded stack's data dir")
    b.add_argument("--quiet", "-q", action="store_true", help="print only errors")
    b.set_defaults(func=_cmd_backup)
    r = sub.add_parser(
        "restore",
        help="rebuild an empty installation from a backup archive",
        description=(
            f"Restore a backup archive into {where}, which must be empty; the services "
            "must be stopped. Every read model is rebuilt by replay."
        ),
    )
    r.add_argument("archive", help="an archive written by `gatehouse backup`")
    r.add_argument("--data-dir", default=None, help="a new embedded stack's data dir")
    r.add_argument("--quiet", "-q", action="store_true", help="print only errors")
    r.set_defaults(func=_cmd_restore)
