"""The embedded NATS server's users on disk: ``gatehouse up`` owns them.

``<data_dir>/nats-auth.json`` holds every user (service, operator, subscribers) with its
password; ``<data_dir>/nats.conf`` is rendered from it (see :mod:`shared.bus_permissions`)
and read by the embedded ``nats-server``, which writes its pid to ``<data_dir>/nats.pid`` so
that ``gatehouse nats-credentials`` can make a running server reload the users (SIGHUP).
Both files are the owner's only (0600): they hold the passwords.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterable, Sequence
from pathlib import Path

import msgspec

from shared.bus_permissions import (
    OPS_USER,
    SERVICE_USERS,
    NatsUser,
    check_subscriber,
    default_users,
    new_password,
    server_config,
)
from shared.embedded import EMBEDDED_SERVER_NAME

AUTH_FILE = "nats-auth.json"
CONFIG_FILE = "nats.conf"
PID_FILE = "nats.pid"
# The operator's settings for `gatehouse` CLI commands against this stack (source it).
OPS_ENV_FILE = "ops.env"


class _AuthFile(msgspec.Struct, kw_only=True):
    users: list[NatsUser]


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(temporary, path)


def load_users(data_dir: Path) -> list[NatsUser]:
    path = data_dir / AUTH_FILE
    if not path.exists():
        return []
    return msgspec.json.decode(path.read_bytes(), type=_AuthFile).users


def save_users(data_dir: Path, users: Iterable[NatsUser]) -> None:
    encoded = msgspec.json.format(msgspec.json.encode(_AuthFile(users=list(users))))
    _write_private(data_dir / AUTH_FILE, encoded.decode() + "\n")


def ensure_users(data_dir: Path) -> list[NatsUser]:
    """The users of the data dir, with one for every service and the operator (new ones get
    a random password; existing ones keep theirs, so subscribers stay valid)."""
    users = load_users(data_dir)
    have = {user.name for user in users}
    for user in default_users():
        if user.name not in have:
            users.append(user)
    save_users(data_dir, users)
    return users


def write_config(
    data_dir: Path, users: Iterable[NatsUser], *, stream: str, server_name: str | None = None
) -> Path:
    """The embedded server's config. ``server_name``: the name the server starts with (its
    flags say it too); None keeps the one the current file has, for a reload of the running
    server, which refuses a server name that changed."""
    path = data_dir / CONFIG_FILE
    if server_name is None:
        server_name = _current_server_name(path) or EMBEDDED_SERVER_NAME
    extra = {"pid_file": str(data_dir / PID_FILE), "server_name": server_name}
    _write_private(path, server_config(users, stream=stream, extra=extra))
    return path


def _current_server_name(path: Path) -> str | None:
    try:
        name = json.loads(path.read_text()).get("server_name")
    except (OSError, ValueError):
        return None
    return name if isinstance(name, str) else None


def add_subscriber(data_dir: Path, name: str, subjects: Sequence[str]) -> NatsUser:
    """Add (or re-issue, with a new password) a read-only subscriber; raises
    :class:`shared.bus_permissions.SubscriberRefused` for a name or subject outside the model."""
    checked = check_subscriber(name, subjects)
    user = NatsUser(name=name, password=new_password(), role="subscriber", subjects=checked)
    users = [u for u in load_users(data_dir) if u.name != name]
    save_users(data_dir, [*users, user])
    return user


def remove_subscriber(data_dir: Path, name: str) -> bool:
    users = load_users(data_dir)
    kept = [u for u in users if not (u.name == name and u.role == "subscriber")]
    save_users(data_dir, kept)
    return len(kept) != len(users)


def reload_running_server(data_dir: Path) -> bool:
    """Ask the embedded server of ``data_dir``, if it runs, to re-read its config."""
    try:
        pid = int((data_dir / PID_FILE).read_text().strip())
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError):
        return False
    return True


def credentials_of(users: Iterable[NatsUser]) -> dict[str, str]:
    """{user: password} of the service users and the operator."""
    wanted = {*SERVICE_USERS, OPS_USER}
    return {user.name: user.password for user in users if user.name in wanted}


def write_ops_env(data_dir: Path, settings: dict[str, str]) -> Path:
    """``GATEHOUSE_*=value`` lines for the operator's CLI commands (``set -a; . file``)."""
    lines = [f"{name}={_shell_quote(value)}" for name, value in settings.items()]
    path = data_dir / OPS_ENV_FILE
    _write_private(path, "\n".join(lines) + "\n")
    return path


def _shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"
