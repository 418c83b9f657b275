"""The ``gatehouse`` command: run the stack, one service, migrations or a replay.

    gatehouse up                   embedded NATS + PostgreSQL + all six services, supervised
    gatehouse serve <service>      one service (HTTP health/metrics; the gateway serves the API)
    gatehouse migrate [service…]   apply migrations (all services when none is named)
    gatehouse replay <service>     drop the service's read models and rebuild them from seq 0
    gatehouse vulndb import PATH   import OSV advisories (a zip, or a folder of JSON files)
    gatehouse vulndb epss PATH     import EPSS scores (FIRST's CSV, plain or .gz)
    gatehouse gate --url --token --repo --commit [--wait S] [--format text|json|github]
                                   CI gate: exit 0 SHIP, 1 NO_SHIP, 2 error or timeout
    gatehouse backup ARCHIVE       write a consistent archive: events, blobs, kept tables
    gatehouse restore ARCHIVE      rebuild an empty installation from an archive, by replay

Settings come from GATEHOUSE_* environment variables (see the README).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import NoReturn

import asyncpg

from services.backup.command import add_parsers as add_backup_parsers
from services.gate.command import add_parser as add_gate_parser
from services.registry import SERVICES, definition
from shared.db import create_pool, ensure_database
from shared.errors import GatehouseError
from shared.logging import configure_logging
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
    add_backup_parsers(sub)
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
