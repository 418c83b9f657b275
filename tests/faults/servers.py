"""The servers a fault ring runs on: a single NATS node or a 3-node JetStream cluster, and a
private PostgreSQL, each on free loopback ports with data in the ring's folder so that a
killed node can be started again on the same store.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import nats
import nats.errors
import nats.js.errors

from shared.embedded import die_with_parent, free_port, nats_server_binary, wait_for_port

CLUSTER_NAME = "gatehouse-faults"


@dataclass
class NatsNode:
    """One nats-server process; ``routes`` non-empty makes it a member of a cluster."""

    name: str
    folder: Path
    port: int
    cluster_port: int = 0
    routes: list[int] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        command = [
            nats_server_binary(),
            "-js",
            "-sd",
            str(self.folder / "store"),
            "-a",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-n",
            self.name,
        ]
        if self.cluster_port:
            command += [
                "--cluster_name",
                CLUSTER_NAME,
                "--cluster",
                f"nats://127.0.0.1:{self.cluster_port}",
                "--routes",
                ",".join(f"nats://127.0.0.1:{port}" for port in self.routes),
            ]
        return command

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / "nats.log", "ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        wait_for_port(self.port, timeout=20, proc=self.proc)

    def kill(self) -> None:
        """kill -9: no goodbye to the cluster, no flush."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


@dataclass
class NatsServers:
    """One node (``size=1``) or a cluster of ``size`` nodes on loopback."""

    nodes: list[NatsNode]

    @classmethod
    def create(cls, folder: Path, *, size: int) -> NatsServers:
        if size == 1:
            return cls([NatsNode("faults-n1", folder / "n1", free_port())])
        cluster_ports = [free_port() for _ in range(size)]
        return cls(
            [
                NatsNode(
                    f"faults-n{i + 1}",
                    folder / f"n{i + 1}",
                    free_port(),
                    cluster_port=cluster_ports[i],
                    routes=[p for p in cluster_ports if p != cluster_ports[i]],
                )
                for i in range(size)
            ]
        )

    @property
    def url(self) -> str:
        """The seed the services are given; they learn the other members from it."""
        return self.nodes[0].url

    def start(self) -> None:
        for node in self.nodes:
            node.start()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def node(self, name: str) -> NatsNode:
        return next(node for node in self.nodes if node.name == name)

    async def wait_jetstream(self, *, timeout: float = 60.0) -> None:  # noqa: ASYNC109
        """Until JetStream answers through every running node (a cluster: a meta leader)."""
        deadline = asyncio.get_running_loop().time() + timeout
        for node in self.nodes:
            if node.proc is None:
                continue
            while True:
                try:
                    nc = await nats.connect(node.url, connect_timeout=2, max_reconnect_attempts=0)
                    try:
                        await nc.jetstream(timeout=2).account_info()
                        break
                    finally:
                        await nc.close()
                except (nats.errors.Error, OSError, TimeoutError):
                    if asyncio.get_running_loop().time() > deadline:
                        raise AssertionError(f"JetStream not ready on {node.name}") from None
                    await asyncio.sleep(0.2)

    async def replicas_current(self, stream: str) -> bool:
        """The stream has a leader and every other member has caught up with it."""
        nc = await nats.connect(self.url)
        try:
            info = await nc.jetstream(timeout=5).stream_info(stream)
        finally:
            await nc.close()
        cluster = info.cluster
        if cluster is None:
            return len(self.nodes) == 1
        peers = cluster.replicas or []
        return (
            bool(cluster.leader)
            and len(peers) == len(self.nodes) - 1
            and all(peer.current for peer in peers)
        )

    async def wait_replicas_current(self, stream: str, *, timeout: float = 60.0) -> None:  # noqa: ASYNC109
        deadline = asyncio.get_running_loop().time() + timeout
        while not await self.replicas_current(stream):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"the replicas of {stream} did not catch up in {timeout:g}s")
            await asyncio.sleep(0.2)

    async def stream_leader(self, stream: str) -> str:
        """The server name of the stream's leader (the only node on a single node)."""
        nc = await nats.connect(self.url)
        try:
            info = await nc.jetstream(timeout=5).stream_info(stream)
        finally:
            await nc.close()
        if info.cluster is None or not info.cluster.leader:
            return self.nodes[0].name
        return str(info.cluster.leader)


async def stream_replicas(url: str, stream: str) -> int:
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream(timeout=5).stream_info(stream)
    finally:
        await nc.close()
    return int(info.config.num_replicas or 1)
