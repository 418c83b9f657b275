"""The pure rules of `gatehouse up` (services/supervisor.py): back-off, what reaches the
terminal, ports, options and the state file. The running stack is tested in tests/e2e."""

from __future__ import annotations

import argparse
import io
import json
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.supervisor import (
    BACKOFF_CAP_SECONDS,
    STATE_FILE,
    Console,
    Stack,
    StackError,
    choose_port,
    console_line,
    describe_exit,
    exclusive_data_dir,
    http_url,
    load_state,
    options_from,
    probe_host,
    redact_url,
    relative,
    restart_delay,
    save_state,
    stop_signals,
)
from shared.settings import SettingsError, load_settings


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(out, io.StringIO()), out


def _args(**given: object) -> argparse.Namespace:
    values: dict[str, object] = {"data_dir": None, "port": None, "verbose": False}
    values.update(given)
    return argparse.Namespace(**values)


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something listens on for the duration of the test."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


# -- back-off -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("crashes", "delay"), [(0, 1.0), (1, 1.0), (2, 2.0), (3, 4.0), (5, 16.0), (6, 30.0)]
)
def test_restart_delay_doubles_from_one_second(crashes: int, delay: float) -> None:
    assert restart_delay(crashes) == delay


def test_restart_delay_is_capped_even_after_very_many_crashes() -> None:
    assert restart_delay(10_000) == BACKOFF_CAP_SECONDS


# -- what is printed ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:s3cret@db:5432/gatehouse", "postgresql://app:***@db:5432/gatehouse"),
        ("nats://user:pw@nats.internal", "nats://user:***@nats.internal"),
        ("postgresql://:only-a-password@db/x", "postgresql://:***@db/x"),
        ("postgresql://postgres@127.0.0.1:5432/gatehouse", None),
        ("nats://127.0.0.1:4222", None),
    ],
)
def test_redact_url_hides_only_the_password(url: str, shown: str | None) -> None:
    assert redact_url(url) == (shown or url)
    assert "s3cret" not in redact_url(url) and "only-a-password" not in redact_url(url)


def _record(**fields: object) -> str:
    return json.dumps({"timestamp": "2024-01-01T00:00:00Z", "service": "audit", **fields})


def test_console_line_shows_warnings_with_their_details() -> None:
    line = _record(level="warning", event="projection_lagging", lag=12)
    assert console_line("audit", line, verbose=False) == "[audit] warning projection_lagging lag=12"


def test_console_line_keeps_info_in_the_file_unless_verbose() -> None:
    line = _record(level="info", event="service_started", http_port=1234)
    assert console_line("audit", line, verbose=False) is None
    assert (
        console_line("audit", line, verbose=True) == "[audit] info service_started http_port=1234"
    )


def test_console_line_shows_only_the_last_line_of_an_exception() -> None:
    trace = "Traceback (most recent call last):\n  File x\nValueError: boom\n"
    line = _record(level="error", event="handler_failed", exception=trace)
    assert console_line("gateway", line, verbose=False) == (
        "[gateway] error handler_failed exception=ValueError: boom"
    )


@pytest.mark.parametrize(
    "line", ["Traceback (most recent call last):", "{not json", '["a", "list"]', "plain print"]
)
def test_console_line_always_shows_what_is_not_a_log_record(line: str) -> None:
    assert console_line("scanner", line + "\n", verbose=False) == f"[scanner] {line}"


@pytest.mark.parametrize("line", ["", "\n", "   \n"])
def test_console_line_drops_blank_lines(line: str) -> None:
    assert console_line("scanner", line, verbose=True) is None


@pytest.mark.parametrize(
    ("bound", "probed"),
    [("", "127.0.0.1"), ("0.0.0.0", "127.0.0.1"), ("::", "::1"), ("10.1.2.3", "10.1.2.3")],
)
def test_probe_host_reaches_a_wildcard_bind_on_loopback(bound: str, probed: str) -> None:
    assert probe_host(bound) == probed


def test_http_url_brackets_ipv6() -> None:
    assert http_url("127.0.0.1", 8080) == "http://127.0.0.1:8080"
    assert http_url("::1", 8080) == "http://[::1]:8080"


def test_describe_exit_names_the_signal() -> None:
    assert describe_exit(3) == "exited with code 3"
    assert describe_exit(-signal.SIGKILL) == "was killed by SIGKILL"
    assert describe_exit(None) == "is still running"


# -- options --------------------------------------------------------------------------------


def test_options_default_to_no_port_asked_and_the_settings_data_dir(tmp_path: Path) -> None:
    options = options_from(_args(), {"GATEHOUSE_DATA_DIR": str(tmp_path / "d")})
    assert options.gateway_port is None
    assert options.data_dir == (tmp_path / "d").resolve()


def test_options_port_flag_wins_over_the_variable() -> None:
    options = options_from(_args(port=9001), {"GATEHOUSE_HTTP_PORT": "9002"})
    assert (options.gateway_port, options.gateway_port_origin) == (9001, "--port")


def test_options_port_from_the_variable_names_it_as_the_origin() -> None:
    options = options_from(_args(), {"GATEHOUSE_HTTP_PORT": "9002"})
    assert (options.gateway_port, options.gateway_port_origin) == (9002, "GATEHOUSE_HTTP_PORT")


def test_options_port_zero_means_any_free_port() -> None:
    assert options_from(_args(), {"GATEHOUSE_HTTP_PORT": "0"}).gateway_port == 0


def test_options_refuse_a_port_out_of_range_with_exit_code_two() -> None:
    with pytest.raises(StackError, match="--port 70000 is not a TCP port") as caught:
        options_from(_args(port=70000), {})
    assert caught.value.exit_code == 2


@pytest.mark.parametrize("value", ["http", "-1", "65536"])
def test_options_refuse_a_bad_variable_naming_it(value: str) -> None:
    with pytest.raises(SettingsError, match="GATEHOUSE_HTTP_PORT"):
        options_from(_args(), {"GATEHOUSE_HTTP_PORT": value})


# -- the state file -------------------------------------------------------------------------


def test_state_round_trips(tmp_path: Path) -> None:
    console, _ = _console()
    save_state(tmp_path, {"nats": 4223, "gateway": 8081})
    assert load_state(tmp_path, console) == {"nats": 4223, "gateway": 8081}
    assert not list(tmp_path.glob("*.partial"))


def test_state_is_empty_on_the_first_start(tmp_path: Path) -> None:
    console, out = _console()
    assert load_state(tmp_path, console) == {}
    assert out.getvalue() == ""


@pytest.mark.parametrize(
    "content",
    ["{not json", '["a list"]', '{"ports": ["a list"]}', '{"ports": {"nats": "x"}}', "\x00\x01"],
)
def test_a_corrupt_state_file_is_ignored_with_a_word(tmp_path: Path, content: str) -> None:
    (tmp_path / STATE_FILE).write_text(content)
    console, out = _console()
    assert load_state(tmp_path, console) == {}
    # Shown as the console shows paths (relative below the working directory).
    assert f"ignoring {relative(tmp_path / STATE_FILE)}" in out.getvalue()


def test_state_drops_ports_out_of_range(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).write_text('{"ports": {"nats": 0, "postgres": 70000, "audit": 4100}}')
    console, _ = _console()
    assert load_state(tmp_path, console) == {"audit": 4100}


# -- ports ----------------------------------------------------------------------------------


def test_choose_port_keeps_the_remembered_port_when_free() -> None:
    console, out = _console()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    assert choose_port("audit", "audit", {"audit": port}, console) == port
    assert out.getvalue() == ""


def test_choose_port_moves_off_a_busy_remembered_port_and_says_so(busy_port: int) -> None:
    console, out = _console()
    chosen = choose_port("NATS", "nats", {"nats": busy_port}, console)
    assert chosen != busy_port and 0 < chosen <= 65535
    assert f"NATS: port {busy_port} (used last time) is in use; using {chosen}" in out.getvalue()


def test_choose_port_without_a_preference_takes_a_free_port_silently() -> None:
    console, out = _console()
    assert choose_port("audit", "audit", {}, console) > 0
    assert out.getvalue() == ""


def _stack(tmp_path: Path, env: dict[str, str], **args: object) -> tuple[Stack, io.StringIO]:
    console, out = _console()
    stack = Stack(
        options=options_from(_args(data_dir=str(tmp_path), **args), env),
        console=console,
        environ=env,
        settings=load_settings(env),
    )
    return stack, out


def test_a_busy_gateway_port_that_was_asked_for_is_refused_with_exit_code_two(
    tmp_path: Path, busy_port: int
) -> None:
    stack, _ = _stack(tmp_path, {"GATEHOUSE_HTTP_PORT": str(busy_port)})
    with pytest.raises(StackError) as caught:
        stack.choose_gateway_port({})
    assert caught.value.exit_code == 2
    assert f"port {busy_port} (from GATEHOUSE_HTTP_PORT) is already in use" in str(caught.value)


def test_a_busy_remembered_gateway_port_is_replaced_and_said(
    tmp_path: Path, busy_port: int
) -> None:
    stack, out = _stack(tmp_path, {})
    stack.choose_gateway_port({"gateway": busy_port})
    assert stack.ports["gateway"] != busy_port
    assert f"gateway: port {busy_port} is in use; using {stack.ports['gateway']}" in out.getvalue()


def test_gateway_port_zero_takes_a_free_port(tmp_path: Path) -> None:
    stack, out = _stack(tmp_path, {}, port=0)
    stack.choose_gateway_port({"gateway": 1})
    assert stack.ports["gateway"] not in (0, 1, 8080)
    assert out.getvalue() == ""


# -- the data dir ---------------------------------------------------------------------------


def test_one_stack_per_data_dir(tmp_path: Path) -> None:
    with exclusive_data_dir(tmp_path):
        with (
            pytest.raises(StackError, match="already running") as caught,
            exclusive_data_dir(tmp_path),
        ):
            pass
        assert caught.value.exit_code == 2
    with exclusive_data_dir(tmp_path):  # released on exit
        pass


def test_the_bootstrap_token_is_taken_once(tmp_path: Path) -> None:
    stack, _ = _stack(tmp_path, {})
    stack.token_file.write_text("gh_abc\n")
    assert stack.take_bootstrap_token() == "gh_abc"
    assert not stack.token_file.exists()
    assert stack.take_bootstrap_token() is None


def test_the_console_survives_a_closed_terminal() -> None:
    out, err = io.StringIO(), io.StringIO()
    console = Console(out, err)
    out.close()
    err.close()
    console.say("Stopping …")  # no exception: the shutdown goes on
    console.echo("[gateway] warning x")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_stop_signals_catch_interrupt_terminate_and_hangup(sig: signal.Signals) -> None:
    received: list[int] = []
    before = signal.getsignal(sig)
    with stop_signals(received.append):
        signal.raise_signal(sig)
    assert received == [sig]
    assert signal.getsignal(sig) is before
