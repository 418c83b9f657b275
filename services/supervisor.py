"""``gatehouse up``: the whole stack on one machine, supervised.

Starts an embedded NATS JetStream and an embedded PostgreSQL (unless ``GATEHOUSE_NATS_URL`` /
``GATEHOUSE_DATABASE_URL`` name external servers), then every service of
:data:`services.registry.SERVICES` as a child process (``python -m services.cli serve <name>``),
waits until each answers ``/health/ready``, prints the gateway URL and, on the very first
start, the bootstrap admin token. A child that crashes is restarted with back-off.
SIGINT / SIGTERM (and SIGHUP: the terminal closed) stop everything in order: the gateway, the
other services, PostgreSQL, NATS.

Everything lives in the data dir (``./.gatehouse`` by default)::

    stack.json               the ports chosen last time, preferred next time
    supervisor.lock          held while a `gatehouse up` runs on this dir
    nats/, nats.log          the embedded NATS store and its log
    postgres/, postgres.log  the embedded PostgreSQL cluster and its log
    logs/<service>.log       each service's JSON log (warnings and errors are echoed)
    bootstrap-admin-token    written by the gateway on first start; printed once, then deleted

The supervisor binds every service's HTTP port itself and hands the listening socket to the
child (``GATEHOUSE_HTTP_FD``), holding it for as long as it runs: two stacks started at the
same moment cannot both take a port, and a restarted child finds its port waiting. Each run
has an instance id (``GATEHOUSE_INSTANCE_ID``) that ``/health/ready`` reports: a service is
ready only when the process answering is one of this run's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from services.registry import SERVICES, definition
from shared.bus_permissions import OPS_USER
from shared.db import provision_service_roles
from shared.embedded import (
    EmbeddedError,
    EmbeddedNats,
    EmbeddedPostgres,
    PortTaken,
    die_with_parent,
    free_port,
    listening_socket,
    port_is_free,
)
from shared.nats_auth import credentials_of, ensure_users, write_config, write_ops_env
from shared.service import VERSION
from shared.settings import Settings, env_name, load_settings

GATEWAY = "gateway"
DEFAULT_PORTS = {"nats": 4222, "postgres": 5432, GATEWAY: 8080}
STATE_FILE = "stack.json"
LOCK_FILE = "supervisor.lock"
TOKEN_FILE = "bootstrap-admin-token"
EMBEDDED_DATABASE = "gatehouse"

READY_TIMEOUT_SECONDS = 120.0
# How many ports an embedded server tries when others keep being taken under it.
PORT_ATTEMPTS = 3
# A service gets this long to drain after SIGTERM before it is killed.
STOP_TIMEOUT_SECONDS = 20.0
# Crash back-off: 1 s, 2 s, 4 s … capped; a child that stayed up this long starts again at 1 s.
BACKOFF_CAP_SECONDS = 30.0
STABLE_AFTER_SECONDS = 60.0
POLL_SECONDS = 0.2
LOG_ROTATE_BYTES = 20 * 1024 * 1024
ECHOED_LEVELS = frozenset({"warning", "error", "critical", "exception"})
_QUIET_LOG_KEYS = frozenset({"event", "level", "timestamp", "service"})


class StackError(Exception):
    """`gatehouse up` cannot go on; the message says why and what to do."""

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class _Interrupted(Exception):
    """SIGINT/SIGTERM arrived while the stack was still starting."""


# ---------------------------------------------------------------------------------------------
# Pure rules


def restart_delay(consecutive_crashes: int) -> float:
    """Seconds to wait before restarting a child that crashed this many times in a row."""
    # The exponent is bounded: a child crash-looping for a day must not overflow the float.
    doublings = min(max(0, consecutive_crashes - 1), 32)
    return min(BACKOFF_CAP_SECONDS, 2.0**doublings)


def redact_url(url: str) -> str:
    """The URL with its password replaced, for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def console_line(service: str, line: str, *, verbose: bool) -> str | None:
    """What the terminal shows of one log line of a service, or None to keep it in the file.

    Structured lines are shown when they are warnings or errors (all of them with
    ``verbose``), rendered as ``[service] level event key=value``; anything that is not a
    JSON log record (a traceback, a print) is always shown: it means something went wrong.
    """
    text = line.rstrip()
    if not text:
        return None
    record: Any = None
    if text.startswith("{"):
        with contextlib.suppress(ValueError):
            record = json.loads(text)
    if not isinstance(record, dict):
        return f"[{service}] {text}"
    level = str(record.get("level", "info"))
    if not verbose and level not in ECHOED_LEVELS:
        return None
    details = []
    for key, value in record.items():
        if key in _QUIET_LOG_KEYS:
            continue
        if key == "exception" and isinstance(value, str):
            value = value.strip().splitlines()[-1] if value.strip() else value
        details.append(f"{key}={value}")
    return " ".join([f"[{service}]", level, str(record.get("event", "")), *details]).rstrip()


READY, NOT_READY, FOREIGN = "ready", "not ready", "foreign"


def ready_answer(status: int, body: bytes, *, instance: str) -> str:
    """What a ``/health/ready`` answer means to the run whose instance id is ``instance``:
    a process of another run (or not Gatehouse at all) is FOREIGN, whatever its status."""
    try:
        answer = json.loads(body)
    except ValueError:
        return FOREIGN
    if not isinstance(answer, dict) or answer.get("instance") != instance:
        return FOREIGN
    return READY if status == 200 else NOT_READY


def probe_host(http_host: str) -> str:
    """Where to reach a server bound to ``http_host`` from this machine."""
    if http_host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if http_host == "::":
        return "::1"
    return http_host


def http_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


# ---------------------------------------------------------------------------------------------
# Options, console, data dir


@dataclass(frozen=True)
class StackOptions:
    data_dir: Path
    # The gateway port the user asked for (--port or GATEHOUSE_HTTP_PORT): None when not
    # asked (the one used last time, else 8080, else a free one), 0 for any free port.
    gateway_port: int | None
    gateway_port_origin: str
    verbose: bool
    ready_timeout: float


def options_from(args: argparse.Namespace, environ: Mapping[str, str]) -> StackOptions:
    settings = load_settings(environ)  # fails fast, naming the variable, on a bad value
    data_dir = Path(args.data_dir or settings.data_dir).expanduser().resolve()
    port: int | None = None
    origin = ""
    if args.port is not None:
        if not 0 <= args.port <= 65535:
            raise StackError(f"--port {args.port} is not a TCP port (0-65535)", exit_code=2)
        port, origin = args.port, "--port"
    elif env_name("http_port") in environ:
        port, origin = settings.http_port, env_name("http_port")
    return StackOptions(
        data_dir=data_dir,
        gateway_port=port,
        gateway_port_origin=origin,
        verbose=bool(getattr(args, "verbose", False)),
        ready_timeout=float(getattr(args, "ready_timeout", None) or READY_TIMEOUT_SECONDS),
    )


class Console:
    """The supervisor's own messages on stdout; echoed service lines on stderr."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self._out = out
        self._err = err
        self._lock = threading.Lock()

    def say(self, message: str = "") -> None:
        self._write(self._out, message)

    def echo(self, message: str) -> None:
        self._write(self._err, message)

    def _write(self, stream: TextIO, message: str) -> None:
        # A closed terminal (SIGHUP) or pipe must not stop the orderly shutdown half-way.
        with self._lock, contextlib.suppress(OSError, ValueError):
            print(message, file=stream, flush=True)


def relative(path: Path) -> str:
    """A path as the user would type it from here."""
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


@contextlib.contextmanager
def exclusive_data_dir(data_dir: Path) -> Iterator[None]:
    """Hold the data dir's lock: two stacks on one PostgreSQL cluster would corrupt it."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        handle = open(data_dir / LOCK_FILE, "a+")
    except OSError as exc:
        raise StackError(f"cannot use the data dir {data_dir}: {exc.strerror or exc}") from exc
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise StackError(
                f"another `gatehouse up` (pid {holder}) is already running on {data_dir}; "
                "stop it first or pass another --data-dir",
                exit_code=2,
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()  # releases the lock


def load_state(data_dir: Path, console: Console) -> dict[str, int]:
    """Ports remembered from the last run (an unreadable file is ignored, with a word)."""
    path = data_dir / STATE_FILE
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text())
        ports = raw.get("ports", {})
        return {str(k): int(v) for k, v in ports.items() if 0 < int(v) <= 65535}
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        console.say(f"  ignoring {relative(path)}: it is not readable ({exc})")
        return {}


def save_state(data_dir: Path, ports: Mapping[str, int]) -> None:
    path = data_dir / STATE_FILE
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps({"ports": dict(ports)}, indent=2, sort_keys=True) + "\n")
    os.replace(partial, path)


def hold_port(
    what: str, key: str, remembered: Mapping[str, int], console: Console
) -> socket.socket:
    """A listening socket on the port used last time (or the default) when it can be bound,
    otherwise on a free one (said)."""
    preferred = remembered.get(key) or DEFAULT_PORTS.get(key, 0)
    if preferred:
        with contextlib.suppress(OSError):
            return listening_socket(preferred)
    sock = listening_socket(0)
    if preferred:
        why = "used last time" if key in remembered else "the default"
        console.say(f"  {what}: port {preferred} ({why}) is in use; using {port_of(sock)} instead")
    return sock


def port_of(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


def choose_port(what: str, key: str, remembered: Mapping[str, int], console: Console) -> int:
    """The port used last time (or the default) when it is free, otherwise a free one."""
    preferred = remembered.get(key) or DEFAULT_PORTS.get(key, 0)
    if preferred and port_is_free(preferred):
        return preferred
    chosen = free_port()
    if preferred:
        why = "used last time" if key in remembered else "the default"
        console.say(f"  {what}: port {preferred} ({why}) is in use; using {chosen} instead")
    return chosen


# ---------------------------------------------------------------------------------------------
# Children


@dataclass
class ServiceProcess:
    """One supervised service: its command, port, log file and restart state."""

    name: str
    port: int
    host: str
    env: dict[str, str]
    log_path: Path
    # The listening socket the supervisor holds for this service (passed to every start).
    listener: socket.socket | None = None
    # The run's instance id that /health/ready must report.
    instance: str = ""
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    starts: int = 0
    crashes_in_a_row: int = 0
    restart_at: float | None = None
    awaiting_ready: bool = False
    _log_offset: int = 0

    @property
    def ready_url(self) -> str:
        return http_url(probe_host(self.host), self.port) + "/health/ready"

    def spawn(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        with open(self.log_path, "ab") as log_file:
            stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            log_file.write(f"--- gatehouse up: start #{self.starts} at {stamp} ---\n".encode())
            log_file.flush()
            self._log_offset = log_file.tell()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "services.cli", "serve", self.name],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                # Own session: a terminal's Ctrl-C reaches only the supervisor, which then
                # stops the children in order. The kernel still kills them if it dies.
                start_new_session=True,
                preexec_fn=die_with_parent,
                pass_fds=(self.listener.fileno(),) if self.listener is not None else (),
            )
        self.started_at = time.monotonic()
        self.restart_at = None
        self.awaiting_ready = True

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def is_ready(self) -> bool:
        return self.readiness() == READY

    def readiness(self) -> str:
        """READY, NOT_READY, or FOREIGN when another process than this run's answers."""
        try:
            with urllib.request.urlopen(self.ready_url, timeout=1.0) as response:
                status, raw = int(response.status), response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except (urllib.error.URLError, OSError, ValueError):
            return NOT_READY
        return ready_answer(status, raw, instance=self.instance)

    def new_log_lines(self) -> list[str]:
        """Lines the service wrote since the last call (whole lines only)."""
        try:
            with open(self.log_path, "rb") as log_file:
                log_file.seek(self._log_offset)
                chunk = log_file.read()
        except OSError:
            return []
        end = chunk.rfind(b"\n")
        if end < 0:
            return []
        self._log_offset += end + 1
        return chunk[: end + 1].decode("utf-8", errors="replace").splitlines()

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def signal(self, sig: int) -> None:
        if self.running and self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "is still running"
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-returncode).name}"
        return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


def rotate_log(path: Path) -> None:
    """Keep one previous generation of a log that grew large."""
    with contextlib.suppress(OSError):
        if path.stat().st_size > LOG_ROTATE_BYTES:
            os.replace(path, path.with_name(path.name + ".1"))


def prepare_postgres_dir(postgres: EmbeddedPostgres, console: Console) -> None:
    """Make a cluster directory from an earlier run startable, or say why it is not."""
    pgdata = postgres.pgdata
    if pgdata.exists() and not (pgdata / "PG_VERSION").exists() and any(pgdata.iterdir()):
        # initdb was interrupted: it refuses a non-empty directory, and nothing is in there.
        aside = pgdata.with_name(f"postgres.incomplete-{int(time.time())}")
        pgdata.rename(aside)
        console.say(f"  PostgreSQL: moved an incomplete cluster aside to {relative(aside)}")
    pid_file = pgdata / "postmaster.pid"
    pid = _postmaster_pid(pid_file)
    if pid is None:
        return
    if not _is_postmaster_of(pid, pgdata):
        pid_file.unlink(missing_ok=True)  # stale: left by a crash, the pid gone or reused
        console.say("  PostgreSQL: removed a stale postmaster.pid from an earlier run")
        return
    # The PostgreSQL of a killed `gatehouse up` shuts down by itself (parent-death signal).
    deadline = time.monotonic() + 15.0
    while _is_postmaster_of(pid, pgdata) and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
    if _is_postmaster_of(pid, pgdata):
        raise StackError(
            f"a PostgreSQL (pid {pid}) still runs on {relative(pgdata)}; stop it and try again"
        )


def _postmaster_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


def _is_postmaster_of(pid: int, pgdata: Path) -> bool:
    """Whether ``pid`` is a live PostgreSQL serving ``pgdata`` (after a reboot the pid in a
    stale postmaster.pid may belong to anything, even another cluster's backend)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, under another user (the cluster runs as `pgserver` when we are root)
    try:
        name = Path(f"/proc/{pid}/comm").read_text().strip()
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # alive, and nothing here tells otherwise (no /proc)
    return name.startswith("postgres") and os.fsencode(str(pgdata)) in argv


# ---------------------------------------------------------------------------------------------
# The stack


@dataclass
class Stack:
    options: StackOptions
    console: Console
    environ: Mapping[str, str]
    settings: Settings
    ports: dict[str, int] = field(default_factory=dict)
    nats: EmbeddedNats | None = None
    postgres: EmbeddedPostgres | None = None
    nats_url: str = ""
    database_url: str = ""
    children: list[ServiceProcess] = field(default_factory=list)
    # The services' listening sockets, held from the moment their port is chosen.
    listeners: dict[str, socket.socket] = field(default_factory=dict)
    instance: str = field(default_factory=lambda: uuid.uuid4().hex)
    nats_passwords: dict[str, str] = field(default_factory=dict)
    service_dsns: dict[str, str] = field(default_factory=dict)
    stopping: bool = False
    hurry: bool = False

    @property
    def data_dir(self) -> Path:
        return self.options.data_dir

    @property
    def token_file(self) -> Path:
        return self.data_dir / TOKEN_FILE

    @property
    def gateway(self) -> ServiceProcess:
        return next(child for child in self.children if child.name == GATEWAY)

    # -- start ---------------------------------------------------------------------------------

    def choose_gateway_port(self, remembered: Mapping[str, int]) -> None:
        """Bind the gateway's port now and hold it (see the module docstring)."""
        asked = self.options.gateway_port
        host = self.settings.http_host
        if asked is not None and asked != 0:
            try:
                self.hold(GATEWAY, listening_socket(asked, host))
            except OSError as exc:
                raise StackError(
                    f"port {asked} (from {self.options.gateway_port_origin}) is already in use "
                    f"on {host}; stop what listens there or choose another port "
                    f"({exc.strerror or exc})",
                    exit_code=2,
                ) from None
            return
        preferred = 0 if asked == 0 else remembered.get(GATEWAY) or DEFAULT_PORTS[GATEWAY]
        if preferred:
            with contextlib.suppress(OSError):
                self.hold(GATEWAY, listening_socket(preferred, host))
                return
        try:
            self.hold(GATEWAY, listening_socket(0, host))
        except OSError as exc:
            raise StackError(f"cannot listen on {host}: {exc.strerror or exc}") from None
        if preferred:
            chosen = self.ports[GATEWAY]
            self.console.say(f"  gateway: port {preferred} is in use; using {chosen} instead")

    def hold(self, name: str, listener: socket.socket) -> None:
        self.listeners[name] = listener
        self.ports[name] = port_of(listener)

    def release_ports(self) -> None:
        """Close the held sockets (after the children stopped: they were serving on them)."""
        for listener in self.listeners.values():
            listener.close()
        self.listeners.clear()

    def start_nats(self, remembered: Mapping[str, int]) -> None:
        external = self.environ.get(env_name("nats_url"))
        if external:
            self.nats_url = external
            self.console.say(f"  NATS        {redact_url(external)} (external)")
            return
        port = choose_port("NATS", "nats", remembered, self.console)
        self.nats = EmbeddedNats(self.data_dir, port=port)
        self.nats.config_file = self.nats_auth_config(server_name=self.nats.name)
        try:
            self.start_taking_another_port_if_taken("NATS", self.nats)
        except (EmbeddedError, OSError) as exc:
            raise StackError(
                f"the embedded NATS server did not start: {exc}\n"
                f"{_tail(self.data_dir / 'nats.log')}"
            ) from exc
        self.ports["nats"] = self.nats.port
        self.nats_url = self.nats.url
        self.console.say(
            f"  NATS        {self.nats_url} (embedded, JetStream in {relative(self.data_dir)}/nats)"
        )

    def start_postgres(self, remembered: Mapping[str, int]) -> None:
        external = self.environ.get(env_name("database_url"))
        if external:
            self.database_url = external
            self.console.say(f"  PostgreSQL  {redact_url(external)} (external)")
            return
        port = choose_port("PostgreSQL", "postgres", remembered, self.console)
        self.postgres = EmbeddedPostgres(self.data_dir, port=port)
        prepare_postgres_dir(self.postgres, self.console)
        first = not (self.postgres.pgdata / "PG_VERSION").exists()
        if first:
            self.console.say("  PostgreSQL: creating a new cluster (first start)")
        try:
            self.start_taking_another_port_if_taken("PostgreSQL", self.postgres)
        except (EmbeddedError, OSError, subprocess.CalledProcessError) as exc:
            detail = exc.stderr.decode(errors="replace") if hasattr(exc, "stderr") else ""
            raise StackError(f"the embedded PostgreSQL did not start: {exc}\n{detail}") from exc
        self.ports["postgres"] = self.postgres.port
        self.database_url = self.postgres.url(EMBEDDED_DATABASE)
        self.provision_database_roles()
        self.console.say(
            f"  PostgreSQL  {self.database_url} "
            f"(embedded, cluster in {relative(self.postgres.pgdata)})"
        )

    def start_taking_another_port_if_taken(
        self, what: str, server: EmbeddedNats | EmbeddedPostgres
    ) -> None:
        """Start ``server``; when another process took its port between the choice and the
        bind (another stack starting at the same moment), start it again on a free port."""
        for attempt in range(PORT_ATTEMPTS):
            try:
                server.start()
                return
            except PortTaken:
                if attempt + 1 == PORT_ATTEMPTS:
                    raise
                taken, server.port = server.port, free_port()
                self.console.say(f"  {what}: port {taken} was taken meanwhile; using {server.port}")

    def child_env(self, name: str, *, host: str, port: int) -> dict[str, str]:
        env = dict(self.environ)
        env.pop(env_name("bootstrap_token_file"), None)
        env.update(
            {
                env_name("service"): name,
                env_name("nats_url"): self.nats_url,
                env_name("database_url"): self.database_url,
                env_name("http_host"): host,
                env_name("http_port"): str(port),
                env_name("data_dir"): str(self.data_dir),
                env_name("instance_id"): self.instance,
                "PYTHONUNBUFFERED": "1",
            }
        )
        listener = self.listeners.get(name)
        env[env_name("http_fd")] = str(listener.fileno()) if listener is not None else "-1"
        if name == GATEWAY:
            env[env_name("bootstrap_token_file")] = str(self.token_file)
        if name in self.nats_passwords:
            env[env_name("nats_user")] = name
            env[env_name("nats_password")] = self.nats_passwords[name]
        if name in self.service_dsns:
            env[env_name("database_url")] = self.service_dsns[name]
        return env

    # -- credentials: each service its own NATS user and PostgreSQL role ----------------------

    def nats_auth_config(self, *, server_name: str) -> Path:
        """The embedded server's config: a user per service, the operator and subscribers."""
        users = ensure_users(self.data_dir)
        self.nats_passwords = credentials_of(users)
        return write_config(
            self.data_dir, users, stream=self.settings.stream_name, server_name=server_name
        )

    def provision_database_roles(self) -> None:
        """A role per service on the embedded cluster, owning only its schema (fresh
        passwords every start: only the supervisor hands them out)."""
        schemas = {name: definition(name).schema for name in SERVICES}
        try:
            self.service_dsns = asyncio.run(provision_service_roles(self.database_url, schemas))
        except (OSError, asyncpg.PostgresError) as exc:
            raise StackError(f"could not create the services' database roles: {exc}") from exc

    def write_ops_env(self) -> None:
        """The operator's settings for `gatehouse` commands against this stack."""
        values = {env_name("nats_url"): self.nats_url, env_name("database_url"): self.database_url}
        if OPS_USER in self.nats_passwords:
            values[env_name("nats_user")] = OPS_USER
            values[env_name("nats_password")] = self.nats_passwords[OPS_USER]
        path = write_ops_env(self.data_dir, values)
        self.console.say(f"  operator    settings for gatehouse commands in {relative(path)}")

    def start_services(self, remembered: Mapping[str, int]) -> None:
        logs = self.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        for name in SERVICES:
            if name == GATEWAY:
                host, port = self.settings.http_host, self.ports[GATEWAY]
            else:
                # Internal services serve only health and metrics, on this machine.
                host = "127.0.0.1"
                self.hold(name, hold_port(name, name, remembered, self.console))
                port = self.ports[name]
            log_path = logs / f"{name}.log"
            rotate_log(log_path)
            child = ServiceProcess(
                name=name,
                port=port,
                host=host,
                env=self.child_env(name, host=host, port=port),
                log_path=log_path,
                listener=self.listeners.get(name),
                instance=self.instance,
            )
            self.children.append(child)
            child.spawn()
        self.console.say(
            f"  services    starting {', '.join(SERVICES)} "
            f"(logs in {relative(self.data_dir / 'logs')}/)"
        )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.options.ready_timeout
        pending = list(self.children)
        while pending:
            self.echo_logs()
            for child in list(pending):
                if not child.running:
                    code = child.proc.returncode if child.proc else None
                    raise StackError(
                        f"{child.name} {describe_exit(code)} before it was ready. "
                        f"Last lines of {relative(child.log_path)}:\n{child.log_tail()}"
                    )
                answer = child.readiness()
                if answer == FOREIGN:
                    raise StackError(
                        f"{child.name}: another process answers on port {child.port} "
                        f"({child.ready_url}), not the one this `gatehouse up` started"
                    )
                if answer == READY:
                    child.awaiting_ready = False
                    pending.remove(child)
            if pending and time.monotonic() > deadline:
                names = ", ".join(child.name for child in pending)
                tails = "\n".join(
                    f"Last lines of {relative(c.log_path)}:\n{c.log_tail()}" for c in pending
                )
                raise StackError(
                    f"{names} did not become ready within {self.options.ready_timeout:g}s "
                    f"(GET /health/ready).\n{tails}"
                )
            if pending:
                time.sleep(POLL_SECONDS)

    def take_bootstrap_token(self) -> str | None:
        """The token the gateway wrote on its first start; the file is removed once read."""
        try:
            token = self.token_file.read_text().strip()
        except FileNotFoundError:
            return None
        self.token_file.unlink(missing_ok=True)
        return token or None

    def announce(self, started: float) -> None:
        gateway = self.gateway
        url = self.settings.public_url.rstrip("/") or http_url(
            probe_host(gateway.host), gateway.port
        )
        token = self.take_bootstrap_token()
        say = self.console.say
        say(f"  ready in {time.monotonic() - started:.1f}s")
        say()
        say(f"Gatehouse is running at {url}")
        say(f"  API reference: {url}/api/docs   OpenAPI: {url}/api/openapi.json")
        if token:
            say()
            say(f"Admin token: {token}")
            say("  This bootstrap ADMIN token is shown only once and stored only as a hash:")
            say("  keep it now. Try it:")
            say(f'    curl -H "Authorization: Bearer {token}" {url}/api/v1/me')
        say()
        say("Press Ctrl-C to stop.")

    # -- run -----------------------------------------------------------------------------------

    def echo_logs(self) -> None:
        for child in self.children:
            for line in child.new_log_lines():
                shown = console_line(child.name, line, verbose=self.options.verbose)
                if shown is not None:
                    self.console.echo(shown)

    def supervise(self) -> None:
        """Restart crashed children with back-off until asked to stop."""
        while not self.stopping:
            now = time.monotonic()
            self.echo_logs()
            self.check_infra()
            for child in self.children:
                if child.restart_at is not None:
                    if now >= child.restart_at and not self.stopping:
                        child.spawn()
                    continue
                if not child.running:
                    self.schedule_restart(child, now)
                elif child.awaiting_ready and child.starts > 1 and child.is_ready():
                    child.awaiting_ready = False
                    self.console.say(f"  {child.name} is ready again (start #{child.starts})")
            time.sleep(POLL_SECONDS)

    def schedule_restart(self, child: ServiceProcess, now: float) -> None:
        uptime = now - child.started_at
        child.crashes_in_a_row = 1 if uptime >= STABLE_AFTER_SECONDS else child.crashes_in_a_row + 1
        delay = restart_delay(child.crashes_in_a_row)
        code = child.proc.returncode if child.proc else None
        self.console.say(
            f"  {child.name} {describe_exit(code)} after {uptime:.1f}s; restarting in "
            f"{delay:g}s (see {relative(child.log_path)})"
        )
        child.restart_at = now + delay

    def check_infra(self) -> None:
        """Embedded NATS or PostgreSQL that died is started again (services reconnect)."""
        for what, server in (("NATS", self.nats), ("PostgreSQL", self.postgres)):
            if server is None or server.proc is None or server.proc.poll() is None:
                continue
            self.console.say(f"  {what} {describe_exit(server.proc.returncode)}; restarting it")
            try:
                if isinstance(server, EmbeddedPostgres):
                    prepare_postgres_dir(server, self.console)
                server.start()
                self.console.say(f"  {what} is back")
            except (EmbeddedError, OSError, StackError, subprocess.CalledProcessError) as exc:
                # Leave the dead process in place: the next round tries again.
                self.console.say(f"  {what} did not restart: {exc}")
                time.sleep(1.0)

    # -- stop ----------------------------------------------------------------------------------

    def stop(self) -> None:
        """Gateway first (no new requests), then the other services, PostgreSQL, NATS."""
        self.stopping = True
        gateway = [child for child in self.children if child.name == GATEWAY]
        others = [child for child in self.children if child.name != GATEWAY]
        for group in (gateway, others):
            self.stop_children(group)
        self.echo_logs()
        self.release_ports()
        if self.postgres is not None:
            self.postgres.stop()
        if self.nats is not None:
            self.nats.stop()

    def stop_children(self, children: list[ServiceProcess]) -> None:
        for child in children:
            child.restart_at = None
            child.signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while any(child.running for child in children):
            if self.hurry or time.monotonic() > deadline:
                for child in children:
                    if child.running:
                        self.console.say(f"  {child.name} did not stop in time; killing it")
                        child.signal(signal.SIGKILL)
                for child in children:
                    if child.proc is not None:
                        child.proc.wait(5)
                break
            time.sleep(0.05)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@contextlib.contextmanager
def stop_signals(on_signal: Callable[[int], None]) -> Iterator[None]:
    # SIGHUP too: a closed terminal would otherwise kill the supervisor outright and leave the
    # children to the parent-death signal, unordered.
    stopping = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.getsignal(sig) for sig in stopping}

    def handler(signum: int, _frame: FrameType | None) -> None:
        on_signal(signum)

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_stack(
    args: argparse.Namespace,
    *,
    environ: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run the stack until SIGINT/SIGTERM; 0 after a clean stop, 1 (or 2 for bad input)
    when it cannot start."""
    env = dict(os.environ if environ is None else environ)
    console = Console(out or sys.stdout, err or sys.stderr)
    try:
        options = options_from(args, env)
        with exclusive_data_dir(options.data_dir):
            return _run(options, console, env)
    except StackError as exc:
        console.echo(f"gatehouse: {exc}")
        return exc.exit_code


def _run(options: StackOptions, console: Console, environ: Mapping[str, str]) -> int:
    stack = Stack(
        options=options, console=console, environ=environ, settings=load_settings(environ)
    )
    phase = {"starting": True}

    def on_signal(signum: int) -> None:
        if phase["starting"]:
            phase["starting"] = False  # a second signal during the stop must not interrupt it
            raise _Interrupted(signal.Signals(signum).name)
        if stack.stopping:
            stack.hurry = True
        stack.stopping = True

    started = time.monotonic()
    console.say(f"Gatehouse {VERSION}: starting the stack in {relative(options.data_dir)}")
    remembered = load_state(options.data_dir, console)
    stack.choose_gateway_port(remembered)
    with stop_signals(on_signal):
        try:
            stack.start_nats(remembered)
            stack.start_postgres(remembered)
            stack.write_ops_env()
            stack.start_services(remembered)
            stack.wait_ready()
            save_state(options.data_dir, stack.ports)
            phase["starting"] = False
            stack.announce(started)
            stack.supervise()
            console.say("Stopping: gateway, services, PostgreSQL, NATS …")
        except _Interrupted:
            console.say("Interrupted while starting; stopping what was started …")
            stack.stop()
            return 130
        except BaseException:
            phase["starting"] = False
            stack.stop()
            raise
        stack.stop()
    console.say("Stopped. Data is kept in " + relative(options.data_dir))
    return 0
