"""The ``gatehouse`` command: run the stack, one service, migrations or a replay.

    gatehouse up                   embedded NATS + PostgreSQL + all six services, supervised
    gatehouse serve <service>      one service (HTTP health/metrics; the gateway serves the API)
    gatehouse migrate [service…]   apply migrations (all services when none is named)
    gatehouse replay <service>     drop the service's read models and rebuild them from seq 0
    gatehouse vulndb import PATH   import OSV advisories (a zip, or a folder of JSON files)
    gatehouse vulndb epss PATH     import EPSS scores (FIRST's CSV, plain or .gz)
    gatehouse gate --url --token --repo --commit [--wait S] [--format text|json|github]
                                   CI gate: exit 0 SHIP, 1 NO_SHIP, 2 error or timeout
    gatehouse deadletters list [--service S] [--resolved] [--json]
    gatehouse deadletters retry <id>… | --all --service S [--wait S]
    gatehouse deadletters drop <id>…
                                   events a projection could not apply, and what to do
    gatehouse jobs list [--service S] [--dropped] [--json]
    gatehouse jobs retry <id>… | --all --service S
    gatehouse jobs drop <id>…
                                   background jobs that exhausted their attempts
    gatehouse backup ARCHIVE       write a consistent archive: events, blobs, kept tables
    gatehouse restore ARCHIVE      rebuild an empty installation from an archive, by replay
    gatehouse signatures backfill-all [--wait S]
                                   index every mirror again and re-verify every signature
    gatehouse nats-credentials create-subscriber NAME [--subject S]…
                                   read-only NATS credentials for an external subscriber

Settings come from GATEHOUSE_* environment variables (see the README).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn

import asyncpg

from services.backup.command import add_parsers as add_backup_parsers
from services.gate.command import add_parser as add_gate_parser
from services.nats_credentials.command import add_parser as add_nats_credentials_parser
from services.registry import SERVICES, definition
from services.signature_verifier.signatures.cli import add_parser as add_signatures_parser
from shared.db import connect, create_pool, ensure_database
from shared.errors import GatehouseError
from shared.jobs import drop_failed, failed_jobs, job_tables, retry_failed
from shared.logging import configure_logging
from shared.projection import drop_dead_letter, request_retry
from shared.service import Runtime, serve
from shared.settings import SettingsError, load_settings

USAGE_ERROR = 2


class _Parser(argparse.ArgumentParser):
    """Bad input ends in one line on stderr and exit code 2, not a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def service_name(text: str) -> str:
    """An argparse type: a service of the registry, or a one-line error listing them."""
    if text not in SERVICES:
        raise argparse.ArgumentTypeError(
            f"unknown service {text!r}; choose from {', '.join(SERVICES)}"
        )
    return text


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a TCP port (0-65535)")
    return port


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return seconds


def _cmd_serve(args: argparse.Namespace) -> int:
    settings = load_settings(service=args.service)
    asyncio.run(serve(definition(args.service), settings))
    return 0


async def _migrate(names: list[str]) -> None:
    for name in names:
        runtime = Runtime(definition(name), load_settings(service=name))
        await ensure_database(runtime.settings.database_url)
        runtime.pool = await create_pool(runtime.settings.database_url, min_size=1, max_size=2)
        try:
            applied = await runtime.migrate()
            print(f"{name}: {'applied ' + ', '.join(map(str, applied)) if applied else 'at head'}")
        finally:
            await runtime.pool.close()


def _cmd_migrate(args: argparse.Namespace) -> int:
    configure_logging(service="migrate", level="warning")
    # Each service once, in registry order (owners first), however they were named.
    chosen = set(args.services)
    asyncio.run(_migrate([name for name in SERVICES if not chosen or name in chosen]))
    return 0


async def _replay(name: str) -> None:
    runtime = Runtime(definition(name), load_settings(service=name))
    await runtime.start(serve=False)
    try:
        if not runtime.runners:
            print(f"{name}: no read models to replay")
        for projection, runner in runtime.runners.items():
            handled = await runner.replay()
            print(f"{name}.{projection}: rebuilt from sequence 0 ({handled} events)")
    finally:
        await runtime.stop()


def _cmd_replay(args: argparse.Namespace) -> int:
    configure_logging(service="replay", level="warning")
    asyncio.run(_replay(args.service))
    return 0


def _cmd_vulndb(args: argparse.Namespace) -> int:
    import msgspec

    from services.scanner.vulndb.cli import load, run_import

    configure_logging(service="vulndb", level="warning")
    settings = load_settings(service="cli")
    path = Path(args.path)
    data, fmt = load(path, kind=args.kind)
    summary = asyncio.run(run_import(settings, data, kind=args.kind, name=path.name, fmt=fmt))
    print(msgspec.json.format(msgspec.json.encode(summary)).decode())
    return 0


# ---- deadletters ---------------------------------------------------------------------------
_DEAD_LETTER_COLUMNS = (
    "id, projection, stream_sequence, subject, event_id, error, created_at, "
    "retry_requested_at, resolved_at, resolution"
)
RETRY_POLL_SECONDS = 0.2


def dead_letter_id(text: str) -> tuple[str | None, int]:
    """An argparse type: ``<service>:<n>`` as `deadletters list` prints it, or ``<n>``
    (with ``--service``)."""
    service, _, number = text.rpartition(":")
    if service and service not in SERVICES:
        raise argparse.ArgumentTypeError(
            f"unknown service {service!r}; choose from {', '.join(SERVICES)}"
        )
    if not number.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a dead letter id (<service>:<n>)")
    return service or None, int(number)


def _dead_letter_json(service: str, row: asyncpg.Record) -> dict[str, object]:
    state = (
        row["resolution"]
        if row["resolved_at"]
        else "retry requested"
        if row["retry_requested_at"]
        else "outstanding"
    )
    return {
        "id": f"{service}:{row['id']}",
        "service": service,
        "projection": row["projection"],
        "stream_sequence": row["stream_sequence"],
        "subject": row["subject"],
        "event_id": row["event_id"],
        "error": row["error"],
        "dead_lettered_at": row["created_at"].isoformat(),
        "state": state,
        "resolved_at": row["resolved_at"].isoformat() if row["resolved_at"] else None,
    }


async def _has_dead_letters_table(conn: asyncpg.Connection, schema: str) -> bool:
    return await conn.fetchval("SELECT to_regclass($1)", f'"{schema}".dead_letter') is not None


async def _deadletters_list(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    found: list[dict[str, object]] = []
    for name in [args.service] if args.service else list(SERVICES):
        schema = definition(name).schema
        if not await _has_dead_letters_table(conn, schema):
            continue  # never migrated: nothing dead-lettered
        rows = await conn.fetch(
            f'SELECT {_DEAD_LETTER_COLUMNS} FROM "{schema}".dead_letter '
            "WHERE $1 OR resolved_at IS NULL ORDER BY projection, stream_sequence",
            args.resolved,
        )
        found += [_dead_letter_json(name, row) for row in rows]
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    if not found:
        print("no dead letters" if args.resolved else "no outstanding dead letters")
        return 0
    for item in found:
        error = " ".join(str(item["error"]).split())
        print(
            f"{item['id']}  {item['projection']}  seq {item['stream_sequence']}  "
            f"{item['subject']}  event {item['event_id'] or '-'}  {item['state']}\n"
            f"    {item['dead_lettered_at']}  {error[:300]}"
        )
    return 0


def _targets(args: argparse.Namespace) -> list[tuple[str, int]]:
    targets = []
    for service, number in args.ids:
        service = service or args.service
        if service is None:
            raise GatehouseError(
                f"dead letter {number}: name its service (<service>:{number}, or --service)",
                code="bad_request",
                status=400,
            )
        targets.append((service, number))
    return targets


async def _deadletters_drop(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    for service, number in _targets(args):
        schema = definition(service).schema
        if not await drop_dead_letter(conn, schema, number):
            raise GatehouseError(
                f"{service}:{number} is not an outstanding dead letter "
                "(see `gatehouse deadletters list --resolved`)",
                code="not_found",
                status=404,
            )
        print(f"{service}:{number}: dropped (kept with resolution 'dropped' as the audit trail)")
    return 0


async def _deadletters_retry(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    if args.all:
        if args.ids or args.service is None:
            raise GatehouseError(
                "--all retries every outstanding dead letter of one --service, without ids",
                code="bad_request",
                status=400,
            )
        schema = definition(args.service).schema
        numbers = await conn.fetch(
            f'SELECT id FROM "{schema}".dead_letter WHERE resolved_at IS NULL ORDER BY id'
            if await _has_dead_letters_table(conn, schema)
            else "SELECT 1 AS id WHERE false"
        )
        targets = [(args.service, int(r["id"])) for r in numbers]
        if not targets:
            print(f"{args.service}: no outstanding dead letters")
            return 0
    elif not args.ids:
        raise GatehouseError(
            "name the dead letters to retry, or --all --service S",
            code="bad_request",
            status=400,
        )
    else:
        targets = _targets(args)
    for service, number in targets:
        schema = definition(service).schema
        if not await request_retry(conn, schema, number):
            raise GatehouseError(
                f"{service}:{number} is not an outstanding dead letter",
                code="not_found",
                status=404,
            )
    if args.wait == 0:
        print(f"retry requested for {len(targets)} dead letter(s)")
        return 0
    return await _await_retries(conn, targets, wait=args.wait)


async def _await_retries(
    conn: asyncpg.Connection, targets: list[tuple[str, int]], *, wait: float
) -> int:
    """The running service's projection applies a retry between its batches: wait for it."""
    pending = dict.fromkeys(targets, "")
    failed = 0
    deadline = asyncio.get_running_loop().time() + wait
    while pending and asyncio.get_running_loop().time() < deadline:
        for service, number in list(pending):
            row = await conn.fetchrow(
                f"SELECT {_DEAD_LETTER_COLUMNS} FROM "
                f'"{definition(service).schema}".dead_letter WHERE id = $1',
                number,
            )
            if row["resolved_at"] is not None:
                print(f"{service}:{number}: {row['resolution']}")
                del pending[(service, number)]
            elif row["retry_requested_at"] is None:
                print(f"{service}:{number}: still failing: {row['error']}")
                del pending[(service, number)]
                failed += 1
        if pending:
            await asyncio.sleep(RETRY_POLL_SECONDS)
    for service, number in pending:
        print(
            f"{service}:{number}: retry requested; no running {service} applied it within "
            f"{wait:g}s (it is applied when the service's projection runs)"
        )
    return 1 if failed or pending else 0


DatabaseCommand = Callable[[asyncpg.Connection, argparse.Namespace], Awaitable[int]]


def _run_on_database(args: argparse.Namespace, command: DatabaseCommand, *, name: str) -> int:
    """An operator command over one connection to the database the settings name."""
    configure_logging(service=name, level="warning")

    async def run() -> int:
        conn = await connect(load_settings(service="cli").database_url)
        try:
            return await command(conn, args)
        finally:
            await conn.close()

    return asyncio.run(run())


def _cmd_deadletters(args: argparse.Namespace) -> int:
    commands = {"list": _deadletters_list, "retry": _deadletters_retry, "drop": _deadletters_drop}
    return _run_on_database(args, commands[args.deadletters_command], name="deadletters")


def _add_deadletters_parser(sub: Any) -> None:
    d = sub.add_parser(
        "deadletters",
        help="list, retry or drop events a projection could not apply",
        description="Events a projection could not apply (dead letters). While one is "
        "outstanding, the service's /health/ready says degraded. Ids are <service>:<n>.",
    )
    dsub = d.add_subparsers(dest="deadletters_command", required=True, metavar="command")
    dl = dsub.add_parser("list", help="the outstanding dead letters (all services by default)")
    dl.add_argument("--service", type=service_name, help=", ".join(SERVICES))
    dl.add_argument("--resolved", action="store_true", help="also the retried and dropped ones")
    dl.add_argument("--json", action="store_true", help="a JSON array instead of text")
    dr = dsub.add_parser(
        "retry",
        help="apply dead letters again (by the running service, from the stored event)",
        description="Ask the service's running projection to apply the events again, each "
        "in its own transaction, now (after the events that followed them in the stream), "
        "and wait for the outcome. Fix the cause first.",
    )
    dr.add_argument("ids", nargs="*", type=dead_letter_id, metavar="id", help="<service>:<n>")
    dr.add_argument("--all", action="store_true", help="every outstanding one of --service")
    dr.add_argument("--service", type=service_name, help="the service of bare <n> ids")
    dr.add_argument(
        "--wait",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long to wait for the outcome (default 30; 0: do not wait)",
    )
    dd = dsub.add_parser(
        "drop", help="give up on dead letters (kept as resolved, for the audit trail)"
    )
    dd.add_argument("ids", nargs="+", type=dead_letter_id, metavar="id", help="<service>:<n>")
    dd.add_argument("--service", type=service_name, help="the service of bare <n> ids")
    for parser in (dl, dr, dd):
        parser.set_defaults(func=_cmd_deadletters)


# ---- jobs ----------------------------------------------------------------------------------
def failed_job_id(text: str) -> tuple[str, str, str]:
    """An argparse type: ``<service>:<table>:<id>`` as `jobs list` prints it."""
    service, table, job_id = [*text.split(":", 2), "", ""][:3]
    if service not in SERVICES:
        raise argparse.ArgumentTypeError(
            f"unknown service {service!r}; choose from {', '.join(SERVICES)}"
        )
    if not table or not job_id:
        raise argparse.ArgumentTypeError(f"{text!r} is not a job id (<service>:<table>:<id>)")
    return service, table, job_id


async def _job_table(conn: asyncpg.Connection, service: str, table: str) -> str:
    qualified = f"{definition(service).schema}.{table}"
    if qualified not in await job_tables(conn, definition(service).schema):
        raise GatehouseError(f"{service} has no jobs table {table!r}", code="not_found", status=404)
    return qualified


async def _jobs_list(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    found: list[dict[str, object]] = []
    for name in [args.service] if args.service else list(SERVICES):
        for job in await failed_jobs(conn, definition(name).schema, dropped=args.dropped):
            found.append(
                {
                    "id": f"{name}:{job.table.split('.', 1)[1]}:{job.id}",
                    "service": name,
                    "table": job.table,
                    "kind": job.kind,
                    "status": job.status,
                    "attempts": job.attempts,
                    "enqueued_seq": job.enqueued_seq,
                    "last_error": job.last_error,
                }
            )
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    if not found:
        print("no failed jobs")
        return 0
    for item in found:
        error = " ".join(str(item["last_error"] or "").split())
        print(
            f"{item['id']}  {item['kind']}  {item['status']}  {item['attempts']} attempts  "
            f"enqueued at seq {item['enqueued_seq']}\n    {error[:300]}"
        )
    return 0


async def _jobs_retry(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    if args.all:
        if args.ids or args.service is None:
            raise GatehouseError(
                "--all retries every failed job of one --service, without ids",
                code="bad_request",
                status=400,
            )
        targets = [
            (args.service, job.table.split(".", 1)[1], job.id)
            for job in await failed_jobs(conn, definition(args.service).schema)
        ]
    elif not args.ids:
        raise GatehouseError(
            "name the jobs to retry, or --all --service S", code="bad_request", status=400
        )
    else:
        targets = list(args.ids)
    for service, table, job_id in targets:
        if not await retry_failed(conn, await _job_table(conn, service, table), job_id):
            raise GatehouseError(
                f"{service}:{table}:{job_id} is not a failed or dropped job "
                "(see `gatehouse jobs list --dropped`)",
                code="not_found",
                status=404,
            )
        print(f"{service}:{table}:{job_id}: pending again, attempts reset")
    if not targets:
        print(f"{args.service}: no failed jobs")
    return 0


async def _jobs_drop(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    for service, table, job_id in args.ids:
        if not await drop_failed(conn, await _job_table(conn, service, table), job_id):
            raise GatehouseError(
                f"{service}:{table}:{job_id} is not a failed job (see `gatehouse jobs list`)",
                code="not_found",
                status=404,
            )
        print(f"{service}:{table}:{job_id}: dropped (kept with status 'dropped')")
    return 0


def _cmd_jobs(args: argparse.Namespace) -> int:
    commands = {"list": _jobs_list, "retry": _jobs_retry, "drop": _jobs_drop}
    return _run_on_database(args, commands[args.jobs_command], name="jobs")


def _add_jobs_parser(sub: Any) -> None:
    j = sub.add_parser(
        "jobs",
        help="list, retry or drop background jobs that exhausted their attempts",
        description="Background jobs (scans, re-matches, decision announcements, SCM posts, "
        "license re-evaluation) that failed GATEHOUSE_JOB_MAX_ATTEMPTS times end 'failed'. "
        "While one is, the service's /health/ready says degraded. Ids are "
        "<service>:<table>:<id>.",
    )
    jsub = j.add_subparsers(dest="jobs_command", required=True, metavar="command")
    jl = jsub.add_parser("list", help="the failed jobs (all services by default)")
    jl.add_argument("--service", type=service_name, help=", ".join(SERVICES))
    jl.add_argument("--dropped", action="store_true", help="also the dropped ones")
    jl.add_argument("--json", action="store_true", help="a JSON array instead of text")
    jr = jsub.add_parser(
        "retry",
        help="put failed (or dropped) jobs back to pending, attempts reset",
        description="The running service's worker claims them again at once. Fix the "
        "cause first: a job that fails again ends failed after the same bound.",
    )
    jr.add_argument(
        "ids", nargs="*", type=failed_job_id, metavar="id", help="<service>:<table>:<id>"
    )
    jr.add_argument("--all", action="store_true", help="every failed job of --service")
    jr.add_argument("--service", type=service_name, help="with --all")
    jd = jsub.add_parser("drop", help="give up on failed jobs (kept, with status 'dropped')")
    jd.add_argument(
        "ids", nargs="+", type=failed_job_id, metavar="id", help="<service>:<table>:<id>"
    )
    for parser in (jl, jr, jd):
        parser.set_defaults(func=_cmd_jobs)


def _cmd_up(args: argparse.Namespace) -> int:
    from services.supervisor import run_stack

    return run_stack(args)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gatehouse", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    up = sub.add_parser(
        "up",
        help="run the whole stack (embedded NATS and PostgreSQL unless configured otherwise)",
        description="Run NATS, PostgreSQL and all six services, supervised, until Ctrl-C.",
    )
    up.add_argument(
        "--data-dir",
        default=None,
        help="where data and logs live (default: $GATEHOUSE_DATA_DIR or ./.gatehouse)",
    )
    up.add_argument(
        "--port",
        type=_port,
        default=None,
        help="gateway port; fails if busy (default: $GATEHOUSE_HTTP_PORT, else 8080 or a free one)",
    )
    up.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        help="echo every service log line, not only warnings and errors",
    )
    up.add_argument(
        "--ready-timeout",
        type=_positive_seconds,
        default=None,
        metavar="SECONDS",
        help="how long services may take to become ready (default 120)",
    )
    up.set_defaults(func=_cmd_up)

    s = sub.add_parser("serve", help="run one service", description="Run one service.")
    s.add_argument("service", type=service_name, help=", ".join(SERVICES))
    s.set_defaults(func=_cmd_serve)

    m = sub.add_parser(
        "migrate",
        help="apply database migrations",
        description="Apply pending migrations of the named services (all when none is named).",
    )
    m.add_argument("services", nargs="*", type=service_name, metavar="service", default=[])
    m.set_defaults(func=_cmd_migrate)

    r = sub.add_parser(
        "replay",
        help="rebuild a service's read models from stream sequence 0",
        description="Drop a service's read models and rebuild them from stream sequence 0.",
    )
    r.add_argument("service", type=service_name, help=", ".join(SERVICES))
    r.set_defaults(func=_cmd_replay)

    v = sub.add_parser(
        "vulndb",
        help="import OSV advisories or EPSS scores (through NATS, GATEHOUSE_NATS_URL)",
        description="Import into the scanner's vulnerability database; prints the summary.",
    )
    vsub = v.add_subparsers(dest="vulndb_command", required=True, metavar="command")
    vi = vsub.add_parser("import", help="OSV advisories: a .zip, or a folder of JSON files")
    vi.add_argument("path")
    vi.set_defaults(func=_cmd_vulndb, kind="osv")
    ve = vsub.add_parser("epss", help="EPSS scores: FIRST's CSV, plain or .csv.gz")
    ve.add_argument("path")
    ve.set_defaults(func=_cmd_vulndb, kind="epss")

    add_gate_parser(sub)
    add_nats_credentials_parser(sub)
    _add_deadletters_parser(sub)
    _add_jobs_parser(sub)
    add_backup_parsers(sub)
    add_signatures_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except SettingsError as exc:
        print(f"gatehouse: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except GatehouseError as exc:
        print(f"gatehouse: {exc}", file=sys.stderr)
        # A refused input (4xx) is the caller's to fix; an unreachable upstream is not.
        return USAGE_ERROR if 400 <= exc.status < 500 else 1
    except (OSError, asyncpg.PostgresError) as exc:
        # An unreachable or refusing server is a one-line message, not a traceback.
        print(f"gatehouse: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
