"""`gatehouse up` as a user runs it: a subprocess on a fresh data dir, driven over HTTP.

The stack runs its own embedded NATS and PostgreSQL on free ports (the machine may already
run servers on 4222 and 5432), prints the gateway URL and, on the first start only, the
bootstrap admin token. The API is driven as a user would (keys, projects, the audit log, the
README's examples); a killed service is restarted; SIGTERM, Ctrl-C and even kill -9 of the
supervisor leave no process behind; the next start on the same data dir finds the data again
and does not show the token again.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import asyncpg
import nats
import nats.errors
import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="the orphan checks read /proc (Linux)"
)

RUNNING = re.compile(r"^Gatehouse is running at (?P<url>http://\S+)$")
TOKEN = re.compile(r"^Admin token: (?P<token>gh_\S+)$")
PRESS_CTRL_C = re.compile(r"^Press Ctrl-C to stop\.$")
# Bounds for a slow, shared CI machine; a healthy start takes a few seconds.
START_TIMEOUT = 150.0
STOP_TIMEOUT = 60.0


class Output:
    """The lines of one pipe, collected by a thread, awaitable by pattern."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self.closed = False
        self._changed = threading.Condition()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self.closed = True
            self._changed.notify_all()

    def wait_closed(self, timeout: float = 10.0) -> None:
        """Until every line the process wrote before it exited has been collected."""
        with self._changed:
            self._changed.wait_for(lambda: self.closed, timeout)

    @property
    def text(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for(
        self, pattern: re.Pattern[str], *, timeout: float, after: int = 0
    ) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        seen = after
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    if found := pattern.search(line):
                        return found
                seen = len(self.lines)
                remaining = deadline - time.monotonic()
                if self.closed or remaining <= 0:
                    why = "the pipe closed" if self.closed else f"not within {timeout:g}s"
                    raise AssertionError(f"no line matching {pattern.pattern!r} ({why})")
                self._changed.wait(remaining)


@dataclass(frozen=True)
class Proc:
    """A process by pid and start time, so that a reused pid is not mistaken for it."""

    pid: int
    started: int
    cmdline: str

    @property
    def alive(self) -> bool:
        stat = _stat(self.pid)
        return stat is not None and stat[2] == self.started and stat[0] != "Z"


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, start time) from /proc/<pid>/stat, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[19])


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError:
        return b""


def processes_of(root_pid: int, data_dir: Path) -> set[Proc]:
    """Every descendant of ``root_pid``, and every process that names ``data_dir`` in its
    command line or environment (a child that escaped its parent would still be found)."""
    children: dict[int, list[int]] = {}
    marked: set[int] = set()
    needle = os.fsencode(str(data_dir))
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        stat = _stat(pid)
        if stat is None:
            continue
        children.setdefault(stat[1], []).append(pid)
        if needle in _read(f"/proc/{pid}/cmdline") or needle in _read(f"/proc/{pid}/environ"):
            marked.add(pid)
    found: set[int] = set()
    todo = [root_pid]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            if child not in found:
                found.add(child)
                todo.append(child)
    procs = set()
    for pid in (found | marked) - {os.getpid()}:
        stat = _stat(pid)
        if stat is not None and stat[0] != "Z":
            cmdline = _read(f"/proc/{pid}/cmdline").replace(b"\0", b" ").decode(errors="replace")
            procs.add(Proc(pid, stat[2], cmdline.strip()))
    return procs


class Stack:
    """One `gatehouse up` subprocess."""

    def __init__(self, data_dir: Path, *args: str, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "up", "--data-dir", str(data_dir), *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.out = Output(self.proc.stdout)
        self.err = Output(self.proc.stderr)

    def wait_running(self) -> str:
        try:
            url = self.out.wait_for(RUNNING, timeout=START_TIMEOUT)["url"]
            self.out.wait_for(PRESS_CTRL_C, timeout=10)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.transcript()}") from None
        return url

    def transcript(self) -> str:
        return f"--- stdout\n{self.out.text}\n--- stderr\n{self.err.text}"

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"no exit within {STOP_TIMEOUT:g}s\n{self.transcript()}") from None
        self.out.wait_closed()
        self.err.wait_closed()
        return code

    def kill(self) -> None:
        """Teardown of a failed test: the children die with it (parent-death signal)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def stacks() -> Iterator[list[Stack]]:
    started: list[Stack] = []
    yield started
    for stack in started:
        stack.kill()


@pytest.fixture
def user_env() -> dict[str, str]:
    """The environment of a user with no GATEHOUSE_* settings, whatever the test run has."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class Reply:
    status: int
    body: Any


def call(
    base: str,
    method: str,
    path: str,
    *,
    token: str | None = None,
    body: Any = None,
    raw: bytes | None = None,
    media_type: str = "application/json",
) -> Reply:
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", media_type)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, raw = int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    return Reply(status, json.loads(raw) if raw else None)


def wait_for_audit_event(base: str, token: str, *, event_type: str, aggregate: str) -> Any:
    """The audit service consumes the stream on its own: poll until the event is there."""
    deadline = time.monotonic() + 30
    while True:
        reply = call(
            base, "GET", f"/api/v1/audit?type={event_type}&aggregate={aggregate}", token=token
        )
        assert reply.status == 200, reply.body
        if reply.body["items"]:
            return reply.body["items"]
        assert time.monotonic() < deadline, f"{event_type} of {aggregate} never reached the audit"
        time.sleep(0.2)


def gate_a_commit(base: str, token: str) -> None:
    """The release gate across the supervised stack: an SBOM of a commit goes to the scanner,
    release-decision decides it from the scanner's events, and `gatehouse gate` (as a CI job
    runs it) waits for that decision and exits 0 on SHIP."""
    commit = os.urandom(20).hex()
    # Nothing ships on an empty vulnerability database (vulndb_missing): one advisory first.
    advisory = {
        "id": "GHSA-e2e-0001",
        "modified": "2024-03-01T00:00:00Z",
        "affected": [
            {
                "package": {"ecosystem": "npm", "name": "left-pad"},
                "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.0.0"}]}],
            }
        ],
    }
    bundle = io.BytesIO()
    with zipfile.ZipFile(bundle, "w") as archive:
        archive.writestr("GHSA-e2e-0001.json", json.dumps(advisory))
    imported = call(
        base,
        "POST",
        "/api/v1/vulndb/import",
        token=token,
        raw=bundle.getvalue(),
        media_type="application/zip",
    )
    assert imported.status == 200, imported.body
    sbom = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "components": [
            {"bom-ref": "lp", "type": "library", "name": "left-pad", "version": "1.3.0"}
        ],
    }
    uploaded = call(
        base,
        "POST",
        f"/api/v1/projects/storefront/sboms?repo=acme/storefront&commit={commit}",
        token=token,
        raw=json.dumps(sbom).encode(),
        media_type="application/vnd.cyclonedx+json",
    )
    assert uploaded.status == 202, uploaded.body
    gate = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli",
            "gate",
            "--url",
            base,
            "--repo",
            "acme/storefront",
            "--commit",
            commit,
            "--wait",
            "60",
            "--format",
            "json",
        ],
        cwd=ROOT,
        env={**os.environ, "GATEHOUSE_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert gate.returncode == 0, gate.stdout + gate.stderr
    assert json.loads(gate.stdout)["decision"]["decision"] == "SHIP"
    # The project's badge is private (the default): without a token nothing is revealed.
    request = urllib.request.Request(f"{base}/api/v1/trust/badge?repo=acme/storefront")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert b"Unknown" in response.read()


def readme_examples() -> str:
    """The shell blocks of the README's "Try it" section, in order."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### Try it", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert len(blocks) >= 2, "the README has its examples"
    return "\n".join(blocks)


def run_readme_examples(base: str, token: str, cwd: Path) -> None:
    if shutil.which("curl") is None or shutil.which("bash") is None:
        return  # nothing to run them with; the API itself was driven above
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", readme_examples()],
        cwd=cwd,
        env={**os.environ, "GATEHOUSE": base, "TOKEN": token},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert '"slug":"hello"' in done.stdout.replace(" ", ""), done.stdout


def ops_env(data_dir: Path) -> dict[str, str]:
    """The operator's settings `gatehouse up` wrote (shell-quoted NAME='value' lines)."""
    found = {}
    for line in (data_dir / "ops.env").read_text().splitlines():
        name, _, value = line.partition("=")
        found[name] = shlex.split(value)[0]
    return found


def assert_each_service_is_its_own_user(data_dir: Path) -> None:
    """Auth is on under `gatehouse up`: NATS refuses a connection without credentials, every
    service is connected to PostgreSQL as its own role, and the flows above ran without one
    permission violation (each service's allow list covers what it does)."""
    env = ops_env(data_dir)
    assert (data_dir / "ops.env").stat().st_mode & 0o077 == 0
    assert (data_dir / "nats.conf").stat().st_mode & 0o077 == 0

    async def check() -> set[str]:
        with pytest.raises((nats.errors.Error, OSError)):
            await nats.connect(
                env["GATEHOUSE_NATS_URL"], allow_reconnect=False, max_reconnect_attempts=0
            )
        ops = await nats.connect(
            env["GATEHOUSE_NATS_URL"],
            user=env["GATEHOUSE_NATS_USER"],
            password=env["GATEHOUSE_NATS_PASSWORD"],
            allow_reconnect=False,
        )
        await ops.close()
        conn = await asyncpg.connect(env["GATEHOUSE_DATABASE_URL"])
        try:
            rows = await conn.fetch(
                "SELECT DISTINCT usename FROM pg_stat_activity "
                "WHERE datname = 'gatehouse' AND pid <> pg_backend_pid()"
            )
        finally:
            await conn.close()
        return {row["usename"] for row in rows}

    users = asyncio.run(check())
    assert users == {
        "gatehouse_audit",
        "gatehouse_gateway",
        "gatehouse_release_decision",
        "gatehouse_scanner",
        "gatehouse_signature_verifier",
        "gatehouse_webhook_fanout",
    }, users
    violations = [
        line for line in (data_dir / "nats.log").read_text().splitlines() if "Violation" in line
    ]
    assert not violations, "\n".join(violations)


def assert_all_gone(procs: set[Proc], stack: Stack, *, within: float = 10.0) -> None:
    # The supervisor waits for its children before it exits; the bound only absorbs the
    # kernel's reaping of processes whose parent just went away (or, after a kill -9 of the
    # supervisor, the children's own shutdown on the parent-death signal).
    deadline = time.monotonic() + within
    while (alive := [p for p in procs if p.alive]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive, f"left running: {alive}\n{stack.transcript()}"


def publish_a_package(base: str, token: str, tmp_path: Path) -> str:
    """The package protocols across the supervised stack, with the real clients: a wheel
    built by `build`, uploaded by `twine` (HTTP Basic, `__token__`), installed by `pip`
    from the simple index. Returns the index's path."""
    created = call(
        base,
        "POST",
        "/api/v1/repos",
        token=token,
        body={"project_id": "storefront", "slug": "py", "format": "pypi", "visibility": "public"},
    )
    assert created.status == 201, created.body
    project = tmp_path / "storefront-sdk"
    (project / "storefront_sdk").mkdir(parents=True)
    (project / "storefront_sdk" / "__init__.py").write_text('VERSION = "0.1"\n')
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=70"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "storefront-sdk"\nversion = "0.1"\n'
    )
    clients = {**os.environ, "PIP_NO_INPUT": "1", "PIP_NO_CACHE_DIR": "1",
               "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1",
               "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"}  # fmt: skip
    built = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--wheel", "--outdir", "dist", "."],
        cwd=project, env=clients, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    index = "/pypi/storefront/py"
    wheels = [str(path) for path in (project / "dist").glob("*.whl")]
    uploaded = subprocess.run(
        [sys.executable, "-m", "twine", "upload", "--disable-progress-bar", "--repository-url",
         f"{base}{index}/", "-u", "__token__", "-p", token, *wheels],
        env=clients, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert uploaded.returncode == 0, uploaded.stdout + uploaded.stderr
    install_the_package(base + index, tmp_path / "installed")
    return index


def install_the_package(index_url: str, target: Path) -> None:
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target),
         "--index-url", f"{index_url}/simple/", "storefront-sdk"],
        env={**os.environ, "PIP_NO_INPUT": "1", "PIP_NO_CACHE_DIR": "1",
             "PIP_CONFIG_FILE": os.devnull},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert (target / "storefront_sdk" / "__init__.py").read_text() == 'VERSION = "0.1"\n'


def test_up_serves_the_api_stops_cleanly_and_keeps_the_data(
    tmp_path: Path, stacks: list[Stack], user_env: dict[str, str]
) -> None:
    data_dir = tmp_path / "data"
    # First start: a free gateway port (the machine may have 8080 taken), fresh data dir.
    first = Stack(data_dir, env={**user_env, "GATEHOUSE_HTTP_PORT": "0"})
    stacks.append(first)
    base = first.wait_running()
    admin = first.out.wait_for(TOKEN, timeout=0)["token"]
    assert (data_dir / "nats").is_dir() and (data_dir / "postgres" / "PG_VERSION").exists()
    assert not (data_dir / "bootstrap-admin-token").exists(), "the token is deleted once shown"

    me = call(base, "GET", "/api/v1/me", token=admin)
    assert me.status == 200 and me.body["roles"] == ["ADMIN"] and me.body["bootstrap"]

    # As a user would: a key for the job at hand, then a project made with that key.
    issued = call(
        base,
        "POST",
        "/api/v1/api-keys",
        token=admin,
        body={"name": "release-bot", "roles": ["POLICY_AUTHOR"]},
    )
    assert issued.status == 201, issued.body
    bot = issued.body["token"]
    created = call(
        base,
        "POST",
        "/api/v1/projects",
        token=bot,
        body={"slug": "storefront", "name": "Storefront", "repos": ["acme/storefront"]},
    )
    assert created.status == 201, created.body
    project_id = created.body["id"]
    read = call(base, "GET", "/api/v1/projects/storefront", token=bot)
    assert read.status == 200 and read.body["id"] == project_id
    assert read.body["repos"] == ["acme/storefront"]
    listed = call(base, "GET", "/api/v1/projects", token=bot)
    assert [p["slug"] for p in listed.body["items"]] == ["storefront"]

    events = wait_for_audit_event(
        base, admin, event_type="project.created", aggregate=f"project:{project_id}"
    )
    bot_me = call(base, "GET", "/api/v1/me", token=bot)
    assert events[0]["actor"] == bot_me.body["actor"] and issued.body["id"] in bot_me.body["actor"]

    run_readme_examples(base, admin, tmp_path)
    gate_a_commit(base, admin)
    index = publish_a_package(base, admin, tmp_path)
    assert_each_service_is_its_own_user(data_dir)

    # Only one stack per data dir.
    second = subprocess.run(
        [sys.executable, "-m", "services.cli", "up", "--data-dir", str(data_dir)],
        cwd=ROOT,
        env=user_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 2, second.stderr
    assert "already running" in second.stderr

    # A crashed service is restarted.
    procs = processes_of(first.proc.pid, data_dir)
    scanner = next(p for p in procs if p.cmdline.endswith("serve scanner"))
    mark = len(first.out.lines)
    os.kill(scanner.pid, signal.SIGKILL)
    first.out.wait_for(re.compile(r"scanner was killed by SIGKILL"), timeout=30, after=mark)
    first.out.wait_for(re.compile(r"scanner is ready again"), timeout=START_TIMEOUT, after=mark)

    procs = processes_of(first.proc.pid, data_dir)
    names = " ".join(p.cmdline for p in procs)
    for expected in (
        "nats-server",
        "postgres",
        "serve gateway",
        "serve audit",
        "serve scanner",
        "serve release-decision",
    ):
        assert expected in names, names
    assert first.stop(signal.SIGTERM) == 0, first.transcript()
    assert "Stopped. Data is kept in" in first.out.text
    assert "Traceback" not in first.err.text, first.transcript()
    assert_all_gone(procs, first)

    # Second start on the same data dir: the data is there, the token is not shown again.
    again = Stack(data_dir, env=user_env)
    stacks.append(again)
    base = again.wait_running()
    assert not TOKEN.search(again.out.text) and admin not in again.out.text
    still = call(base, "GET", "/api/v1/projects/storefront", token=bot)
    assert still.status == 200 and still.body["id"] == project_id
    install_the_package(base + index, tmp_path / "after-restart")  # its bytes were kept too
    assert call(base, "GET", "/api/v1/me", token=admin).status == 200

    # kill -9 of the supervisor: the kernel stops its children (parent-death signal), and the
    # next start recovers the data dir (stale lock, stale postmaster.pid).
    procs = processes_of(again.proc.pid, data_dir)
    assert again.stop(signal.SIGKILL) == -signal.SIGKILL
    assert_all_gone(procs, again, within=STOP_TIMEOUT)
    third = Stack(data_dir, env=user_env)
    stacks.append(third)
    base = third.wait_running()
    assert call(base, "GET", "/api/v1/projects/storefront", token=bot).status == 200
    procs = processes_of(third.proc.pid, data_dir)
    assert third.stop(signal.SIGINT) == 0, third.transcript()  # Ctrl-C
    assert "Traceback" not in third.err.text, third.transcript()
    assert_all_gone(procs, third)


def test_a_busy_port_asked_for_fails_with_a_clear_message(
    tmp_path: Path, user_env: dict[str, str]
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "services.cli",
                "up",
                "--data-dir",
                str(tmp_path / "data"),
                "--port",
                str(port),
            ],
            cwd=ROOT,
            env=user_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"port {port} (from --port) is already in use" in done.stderr
    assert "Traceback" not in done.stderr
    assert "Gatehouse is running" not in done.stdout
    assert not (tmp_path / "data" / "postgres").exists(), "nothing was started"


@pytest.fixture
def outside_tmp() -> Iterator[Path]:
    """A folder not under pytest's tmp_path: as root, PostgreSQL runs as another user and must
    traverse the path, and every pytest session that starts meanwhile takes that right away
    from /tmp/pytest-of-root (which a test of two stacks at once, longer, would meet)."""
    base = Path(tempfile.mkdtemp(prefix="gatehouse-two-stacks-"))
    yield base
    shutil.rmtree(base, ignore_errors=True)


def test_two_stacks_started_at_once_on_the_same_preferred_ports_each_get_their_own(
    outside_tmp: Path, stacks: list[Stack], user_env: dict[str, str]
) -> None:
    """Two `gatehouse up` at the same moment, preferring the same ports (as two checkouts on
    one machine would after a restart). The second used to fail to bind the gateway port yet
    print `ready` with the first stack's URL and a token that stack rejected; now each stack
    holds the ports it bound, and says ready only when its own gateway answers."""
    with (
        socket.socket() as a,
        socket.socket() as b,
        socket.socket() as c,
        socket.socket() as d,
    ):
        for sock in (a, b, c, d):
            sock.bind(("127.0.0.1", 0))
        gateway, nats, postgres, audit = (s.getsockname()[1] for s in (a, b, c, d))
    preferred = {"gateway": gateway, "nats": nats, "postgres": postgres, "audit": audit}
    dirs = [outside_tmp / "one", outside_tmp / "two"]
    for data_dir in dirs:
        data_dir.mkdir()
        (data_dir / "stack.json").write_text(json.dumps({"ports": preferred}))
    both = [Stack(data_dir, env=user_env) for data_dir in dirs]
    stacks.extend(both)

    urls, tokens = [], []
    for stack in both:
        urls.append(stack.wait_running())
        tokens.append(stack.out.wait_for(TOKEN, timeout=0)["token"])
    assert urls[0] != urls[1], "\n".join(s.transcript() for s in both)
    assert f":{gateway}" in " ".join(urls), "one of them has the port it preferred"
    for url, token, other in ((urls[0], tokens[0], tokens[1]), (urls[1], tokens[1], tokens[0])):
        assert call(url, "GET", "/api/v1/me", token=token).status == 200
        assert call(url, "GET", "/api/v1/me", token=other).status == 401
    ready = [call(url, "GET", "/health/ready").body["instance"] for url in urls]
    assert ready[0] != ready[1]
    for stack in both:
        assert stack.stop(signal.SIGTERM) == 0, stack.transcript()
        assert "Traceback" not in stack.err.text, stack.transcript()
    states = [json.loads((d / "stack.json").read_text())["ports"] for d in dirs]
    for key in ("gateway", "nats", "postgres", "audit"):
        assert states[0][key] != states[1][key], (key, states)
