"""NATS permissions, enforced by a real nats-server started with the generated config.

A forged event from a connection without the owner's credentials is refused by the server,
not by our code: that is what makes the stream a system of record.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import nats.errors
import nats.js.errors
import pytest
from nats.aio.client import Client as NatsClient
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from contracts.envelope import encode_envelope, make_envelope
from contracts.events.releases import ReleaseDecided
from shared.bus import Bus
from shared.bus_permissions import (
    OPS_USER,
    SERVICE_USERS,
    NatsUser,
    default_users,
    new_password,
    server_config,
)
from shared.embedded import EmbeddedNats, free_port
from shared.nats_auth import ensure_users, write_config
from shared.settings import Settings, load_settings
from tests.conftest import ROOT, wait_until

STREAM = "GATEHOUSE"


class AuthNats:
    def __init__(self, server: EmbeddedNats, users: dict[str, NatsUser]) -> None:
        self.server = server
        self.users = users

    def settings(self, user: str, **overrides: object) -> Settings:
        return load_settings(
            {},
            nats_url=self.server.url,
            nats_user=user,
            nats_password=self.users[user].password,
            **overrides,
        )

    async def connect(self, user: str, errors: list[Exception] | None = None) -> NatsClient:
        async def on_error(exc: Exception) -> None:
            if errors is not None:
                errors.append(exc)

        return await nats.connect(
            self.server.url,
            user=user,
            password=self.users[user].password,
            error_cb=on_error,
            max_reconnect_attempts=0,
        )


@pytest.fixture(scope="module")
def auth_nats() -> Iterator[AuthNats]:
    tmp = Path(tempfile.mkdtemp(prefix="gatehouse-auth-"))
    users = {u.name: u for u in default_users()}
    users["dashboards"] = NatsUser(
        name="dashboards",
        password=new_password(),
        role="subscriber",
        subjects=("release.>", "finding.>"),
    )
    config = tmp / "nats.conf"
    config.write_text(server_config(users.values(), stream=STREAM))
    server = EmbeddedNats(tmp, port=free_port(), config_file=config)
    server.start()
    try:
        yield AuthNats(server, users)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
async def stream(auth_nats: AuthNats) -> AsyncIterator[Bus]:
    """The GATEHOUSE stream, created by a service (as `Runtime.start` does)."""
    bus = await Bus.connect(auth_nats.settings("release-decision"), name="test-release-decision")
    await bus.ensure_stream()
    yield bus
    await bus.close()


def _decided() -> ReleaseDecided:
    return ReleaseDecided(
        repo="acme/app",
        commit="a" * 40,
        revision=1,
        decision="SHIP",
        policy_version=0,
        evaluated_at=dt.datetime.now(dt.UTC),
    )


def _decided_envelope() -> bytes:
    envelope = make_envelope(
        _decided(),
        source="release-decision",
        aggregate="decision:acme/app@" + "a" * 40,
        actor="system",
        occurred_at=dt.datetime.now(dt.UTC),
    )
    return encode_envelope(envelope)


async def _refused(nc: NatsClient, subject: str, data: bytes, errors: list[Exception]) -> bool:
    """Publish and report whether the server answered a permissions violation."""
    await nc.publish(subject, data)
    with contextlib.suppress(nats.errors.Error):
        await nc.flush(timeout=2)
    for _ in range(100):
        if any("permissions violation" in str(e).lower() for e in errors):
            return True
        await asyncio.sleep(0.02)
    return False


async def _stream_last_seq(bus: Bus) -> int:
    return await bus.last_sequence()


async def test_a_subscriber_cannot_publish_a_decision(auth_nats: AuthNats, stream: Bus) -> None:
    before = await _stream_last_seq(stream)
    errors: list[Exception] = []
    nc = await auth_nats.connect("dashboards", errors)
    try:
        assert await _refused(nc, "release.decided", _decided_envelope(), errors)
        # Nor through the JetStream API: the publish never reaches the stream.
        js = nc.jetstream(timeout=1)
        with pytest.raises((nats.errors.Error, nats.js.errors.Error)):
            await js.publish("scan.completed", b"{}", stream=STREAM)
    finally:
        await nc.close()
    assert await _stream_last_seq(stream) == before


async def test_a_service_cannot_publish_another_services_events(
    auth_nats: AuthNats, stream: Bus
) -> None:
    before = await _stream_last_seq(stream)
    errors: list[Exception] = []
    nc = await auth_nats.connect("scanner", errors)
    try:
        assert await _refused(nc, "release.decided", _decided_envelope(), errors)
    finally:
        await nc.close()
    assert await _stream_last_seq(stream) == before


async def test_an_owner_publishes_and_a_subscriber_reads_it(
    auth_nats: AuthNats, stream: Bus
) -> None:
    nc = await auth_nats.connect("dashboards")
    try:
        js = nc.jetstream(timeout=2)
        live = await nc.subscribe("release.>")
        await nc.flush()
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_consumer(STREAM, "dashboards")
        await js.add_consumer(
            STREAM,
            ConsumerConfig(
                name="dashboards",
                durable_name="dashboards",
                filter_subject="release.>",
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.NEW,
            ),
        )
        sub = await js.pull_subscribe_bind(durable="dashboards", stream=STREAM)
        # release-decision, the owner, publishes through the kit as it always does.
        await stream.publish(_decided(), aggregate="decision:x", actor="system")
        msgs = await sub.fetch(1, timeout=5)
        assert msgs[0].subject == "release.decided"
        await msgs[0].ack()
        got = await live.next_msg(timeout=5)
        assert got.subject == "release.decided"
    finally:
        await nc.close()


async def test_a_subscriber_cannot_read_outside_its_subjects(
    auth_nats: AuthNats, stream: Bus
) -> None:
    errors: list[Exception] = []
    nc = await auth_nats.connect("dashboards", errors)
    try:
        js = nc.jetstream(timeout=1)
        # A consumer on identities (apikey.created) or on another's durable is refused.
        with pytest.raises((nats.errors.Error, nats.js.errors.Error)):
            await js.add_consumer(
                STREAM,
                ConsumerConfig(name="dashboards", filter_subject="apikey.>"),
            )
        with pytest.raises((nats.errors.Error, nats.js.errors.Error)):
            await js.consumer_info(STREAM, "gateway_keys")
        await nc.subscribe("apikey.>")
        with contextlib.suppress(nats.errors.Error):
            await nc.flush(timeout=2)
        for _ in range(100):
            if any("permissions violation" in str(e).lower() for e in errors):
                break
            await asyncio.sleep(0.02)
        assert any("permissions violation" in str(e).lower() for e in errors)
    finally:
        await nc.close()


async def test_a_wrong_password_is_refused(auth_nats: AuthNats) -> None:
    with pytest.raises((nats.errors.Error, OSError)):
        await nats.connect(
            auth_nats.server.url,
            user="scanner",
            password="guess",
            max_reconnect_attempts=0,
            allow_reconnect=False,
        )


def _gatehouse(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def _connects(url: str, user: str, password: str) -> bool:
    try:
        nc = await nats.connect(
            url, user=user, password=password, allow_reconnect=False, max_reconnect_attempts=0
        )
    except (nats.errors.Error, OSError):
        return False
    await nc.close()
    return True


async def test_the_cli_creates_and_revokes_a_subscriber_on_a_running_server(
    tmp_path: Path,
) -> None:
    # As under `gatehouse up`: the users of the data dir, the server started with them.
    server = EmbeddedNats(
        tmp_path,
        port=free_port(),
        config_file=write_config(tmp_path, ensure_users(tmp_path), stream=STREAM),
    )
    server.start()
    try:
        refused = _gatehouse(
            "nats-credentials",
            "create-subscriber",
            "dash",
            "--subject",
            "apikey.>",
            "--data-dir",
            str(tmp_path),
        )
        assert refused.returncode == 2 and "public catalog" in refused.stderr

        made = _gatehouse(
            "nats-credentials",
            "create-subscriber",
            "dash",
            "--subject",
            "release.>",
            "--data-dir",
            str(tmp_path),
        )
        assert made.returncode == 0, made.stderr
        assert "reloaded" in made.stderr
        creds = dict(line.split("=", 1) for line in made.stdout.split())
        user, password = creds["GATEHOUSE_NATS_USER"], creds["GATEHOUSE_NATS_PASSWORD"]
        await wait_until(lambda: _connects(server.url, user, password))

        errors: list[Exception] = []

        async def on_error(exc: Exception) -> None:
            errors.append(exc)

        nc = await nats.connect(
            server.url, user=user, password=password, error_cb=on_error, allow_reconnect=False
        )
        try:
            await nc.subscribe("release.>")
            assert await _refused(nc, "release.decided", _decided_envelope(), errors)
        finally:
            await nc.close()

        removed = _gatehouse(
            "nats-credentials", "remove-subscriber", "dash", "--data-dir", str(tmp_path)
        )
        assert removed.returncode == 0, removed.stderr

        async def revoked() -> bool:
            return not await _connects(server.url, user, password)

        await wait_until(revoked)
    finally:
        server.stop()


@pytest.mark.parametrize("manifest", ["k8s", "compose"])
async def test_the_manifests_nats_config_is_enforced(
    manifest: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server config the manifests ship (dev overlay: fixed development passwords;
    Compose: passwords from PASSWORD_<SERVICE> in the environment) loads in nats-server and
    refuses what the model refuses."""
    from tests.unit.dev_credentials import DEPLOY, DEV, dev_password, password_variable

    if manifest == "k8s":
        config, password = DEV / "nats.conf", dev_password("scanner")
    else:
        config, password = DEPLOY / "nats.conf", "scanner0secret"
        for user in (*SERVICE_USERS, OPS_USER):
            monkeypatch.setenv(password_variable(user), user.replace("-", "") + "0secret")
    server = EmbeddedNats(tmp_path, port=free_port(), config_file=config)
    server.start()
    try:
        assert not await _connects(server.url, "scanner", "wrong")
        errors: list[Exception] = []

        async def on_error(exc: Exception) -> None:
            errors.append(exc)

        nc = await nats.connect(
            server.url, user="scanner", password=password, error_cb=on_error, allow_reconnect=False
        )
        try:
            assert await _refused(nc, "release.decided", _decided_envelope(), errors)
        finally:
            await nc.close()
    finally:
        server.stop()
