"""The ``gatehouse`` command: run the stack, one service, migrations or a replay.

    gatehouse up                   embedded NATS + PostgreSQL + all six services
    gatehouse serve <service>      one service (HTTP health/metrics; the gateway serves the API)
    gatehouse migrate [service…]   apply migrations (all services when none is named)
    gatehouse replay <service>     drop the service's read models and rebuild them from seq 0
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from services.registry import SERVICES, definition
from shared.errors import GatehouseError
from shared.logging import configure_logging
from shared.service import Runtime, serve
from shared.settings import SettingsError, load_settings


def _cmd_serve(args: argparse.Namespace) -> int:
    settings = load_settings(service=args.service)
    asyncio.run(serve(definition(args.service), settings))
    return 0


async def _migrate(names: list[str]) -> None:
    for name in names:
        runtime = Runtime(definition(name), load_settings(service=name))
        from shared.db import create_pool, ensure_database

        await ensure_database(runtime.settings.database_url)
        runtime.pool = await create_pool(runtime.settings.database_url, min_size=1, max_size=2)
        try:
            applied = await runtime.migrate()
            print(f"{name}: {'applied ' + ', '.join(map(str, applied)) if applied else 'at head'}")
        finally:
            await runtime.pool.close()


def _cmd_migrate(args: argparse.Namespace) -> int:
    configure_logging(service="migrate", level="warning")
    asyncio.run(_migrate(args.services or list(SERVICES)))
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


def _cmd_up(args: argparse.Namespace) -> int:
    from services.supervisor import run_stack

    return run_stack(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gatehouse", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the whole stack with embedded NATS and PostgreSQL")
    up.add_argument("--data-dir", default=None, help="where data lives (default ./.gatehouse)")
    up.add_argument("--port", type=int, default=None, help="gateway port (default 8080)")
    up.set_defaults(func=_cmd_up)
    s = sub.add_parser("serve", help="run one service")
    s.add_argument("service", choices=list(SERVICES))
    s.set_defaults(func=_cmd_serve)
    m = sub.add_parser("migrate", help="apply database migrations")
    m.add_argument("services", nargs="*", choices=list(SERVICES) + [[]])
    m.set_defaults(func=_cmd_migrate)
    r = sub.add_parser("replay", help="rebuild a service's read models from stream sequence 0")
    r.add_argument("service", choices=list(SERVICES))
    r.set_defaults(func=_cmd_replay)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (SettingsError, GatehouseError) as exc:
        print(f"gatehouse: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
