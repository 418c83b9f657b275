"""``gatehouse nats-credentials``: read-only NATS users for external subscribers.

    gatehouse nats-credentials create-subscriber NAME [--subject S …] [--data-dir DIR]
    gatehouse nats-credentials remove-subscriber NAME [--data-dir DIR]
    gatehouse nats-credentials server-config [--data-dir DIR]

A subscriber may read only public catalog subjects (default ``artifact.>``, ``finding.>``,
``release.>``): core subscriptions on them, and one JetStream durable consumer named NAME
whose filter is one of them. It may publish no event. The users live in
``<data dir>/nats-auth.json``; ``nats.conf`` beside it is rewritten, and the embedded server
of a running ``gatehouse up`` on that data dir re-reads it at once (SIGHUP). For a NATS
server of your own, ``server-config`` prints the config to include in it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from shared.bus_permissions import DEFAULT_SUBSCRIBER_SUBJECTS, SubscriberRefused
from shared.nats_auth import (
    CONFIG_FILE,
    add_subscriber,
    ensure_users,
    reload_running_server,
    remove_subscriber,
    write_config,
)
from shared.settings import load_settings

USAGE_ERROR = 2


def _data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir or load_settings().data_dir)


def _apply(data_dir: Path) -> str:
    """Rewrite the server config; returns how the change reaches the server."""
    users = ensure_users(data_dir)
    write_config(data_dir, users, stream=load_settings().stream_name)
    if reload_running_server(data_dir):
        return "the embedded NATS server reloaded its users"
    return (
        f"no embedded server runs on {data_dir}: the next `gatehouse up` uses it "
        f"(an own server: include {data_dir / CONFIG_FILE}'s authorization block)"
    )


def _create(args: argparse.Namespace) -> int:
    data_dir = _data_dir(args)
    try:
        user = add_subscriber(data_dir, args.name, args.subject or DEFAULT_SUBSCRIBER_SUBJECTS)
    except SubscriberRefused as exc:
        print(f"gatehouse nats-credentials: {exc}", file=sys.stderr)
        return USAGE_ERROR
    how = _apply(data_dir)
    print(f"GATEHOUSE_NATS_USER={user.name}")
    print(f"GATEHOUSE_NATS_PASSWORD={user.password}")
    print(
        f"# read-only: {' '.join(user.subjects)}; one durable consumer named {user.name!r} "
        f"on the GATEHOUSE stream; {how}",
        file=sys.stderr,
    )
    return 0


def _remove(args: argparse.Namespace) -> int:
    data_dir = _data_dir(args)
    if not remove_subscriber(data_dir, args.name):
        print(f"gatehouse nats-credentials: no subscriber {args.name!r}", file=sys.stderr)
        return 1
    print(f"removed {args.name}; {_apply(data_dir)}", file=sys.stderr)
    return 0


def _server_config(args: argparse.Namespace) -> int:
    data_dir = _data_dir(args)
    _apply(data_dir)
    sys.stdout.write((data_dir / CONFIG_FILE).read_text())
    return 0


def add_parser(sub: Any) -> None:
    """Registers ``nats-credentials`` on the ``gatehouse`` command's subparsers."""
    n = sub.add_parser(
        "nats-credentials",
        help="read-only NATS credentials for external subscribers",
        description=(__doc__ or "").replace("``", "`"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    nsub = n.add_subparsers(dest="nats_command", required=True)
    data_dir_help = "the data dir of `gatehouse up` (default $GATEHOUSE_DATA_DIR or .gatehouse)"
    create = nsub.add_parser(
        "create-subscriber", help="a read-only user (new password if it exists)"
    )
    create.add_argument("name")
    create.add_argument(
        "--subject",
        action="append",
        help="a public subject it may read, repeatable (default: "
        + " ".join(DEFAULT_SUBSCRIBER_SUBJECTS)
        + ")",
    )
    create.add_argument("--data-dir", help=data_dir_help)
    create.set_defaults(func=_create)
    remove = nsub.add_parser("remove-subscriber", help="revoke a subscriber")
    remove.add_argument("name")
    remove.add_argument("--data-dir", help=data_dir_help)
    remove.set_defaults(func=_remove)
    config = nsub.add_parser("server-config", help="print the nats-server config with every user")
    config.add_argument("--data-dir", help=data_dir_help)
    config.set_defaults(func=_server_config)
