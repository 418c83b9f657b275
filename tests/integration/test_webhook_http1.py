"""The fan-out's HTTP/1.1 client (``services.webhook_fanout.deliveries.http1``) against real
local servers speaking raw bytes: every framing a receiver may answer with, keep-alive
reuse, a kept-alive connection the receiver closed, bounds, and the address policy."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from services.webhook_fanout.deliveries.http1 import (
    AddressRefused,
    ConnectFailed,
    Http1Client,
    ResponseInvalid,
)
from shared.embedded import free_port
from shared.outbound import parse_cidrs

Reply = Callable[[bytes, asyncio.StreamWriter], Awaitable[bool]]  # -> keep the connection


class RawServer:
    """Answers each request with ``reply``; counts connections and requests."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.connections = 0
        self.requests: list[bytes] = []
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                if not await self.reply(request, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def raw_server(reply: Reply) -> AsyncIterator[RawServer]:
    server = RawServer(reply)
    server.port = free_port()
    listening = await asyncio.start_server(server.handle, "127.0.0.1", server.port)
    try:
        yield server
    finally:
        listening.close()


def client(**overrides: object) -> Http1Client:
    options: dict[str, object] = {
        "allowed": parse_cidrs("127.0.0.0/8"),
        "per_host_limit": 4,
        "connect_timeout": 2.0,
        "total_timeout": 3.0,
        "max_body": 1024,
    }
    options.update(overrides)
    return Http1Client(**options)  # type: ignore[arg-type]


def answer(raw: bytes, *, keep: bool = True) -> Reply:
    async def reply(_request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(raw)
        await writer.drain()
        return keep

    return reply


async def test_content_length_answers_reuse_one_connection_and_send_what_was_given() -> None:
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nRetry-After: 7\r\n\r\nok"
    async with raw_server(answer(ok)) as server:
        http = client()
        try:
            for n in range(3):
                got = await http.post(
                    f"http://127.0.0.1:{server.port}/hook/{n}?a=b",
                    headers={"Content-Type": "application/json", "webhook-id": "m1"},
                    body=b'{"n": 1}',
                )
                assert (got.status, got.body, got.truncated) == (200, b"ok", False)
                assert got.headers["retry-after"] == "7"
        finally:
            await http.close()
    assert server.connections == 1
    first = server.requests[0]
    assert first.startswith(b"POST /hook/0?a=b HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"\r\nwebhook-id: m1\r\n" in first and b"\r\nContent-Length: 8\r\n" in first
    assert first.endswith(b'\r\n\r\n{"n": 1}')


async def test_chunked_answers_with_extensions_and_trailers_and_interim_responses() -> None:
    chunked = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    async with raw_server(answer(chunked)) as server:
        http = client()
        try:
            for _ in range(2):
                got = await http.post(f"http://127.0.0.1:{server.port}/", headers={}, body=b"")
                assert (got.status, got.body) == (202, b"hello world")
        finally:
            await http.close()
    assert server.connections == 1


async def test_bodies_are_cut_at_the_bound_and_such_a_connection_is_not_reused() -> None:
    big = b"x" * 5000
    replies = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + big,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1388\r\n" + big + b"\r\n0\r\n\r\n",
    ]
    for raw in replies:
        async with raw_server(answer(raw)) as server:
            http = client()
            try:
                for _ in range(2):
                    got = await http.post(f"http://127.0.0.1:{server.port}/", headers={}, body=b"")
                    assert (got.status, len(got.body), got.truncated) == (200, 1024, True)
            finally:
                await http.close()
        assert server.connections == 2


async def test_an_answer_up_to_the_close_and_http_1_0() -> None:
    for raw in (
        b"HTTP/1.1 500 Oops\r\n\r\nsomething broke",
        b"HTTP/1.0 500 Oops\r\nContent-Length: 15\r\n\r\nsomething broke",
    ):
        async with raw_server(answer(raw, keep=False)) as server:
            http = client()
            try:
                for _ in range(2):
                    got = await http.post(f"http://127.0.0.1:{server.port}/", headers={}, body=b"")
                    assert (got.status, got.body) == (500, b"something broke")
            finally:
                await http.close()
        assert server.connections == 2


async def test_a_kept_alive_connection_closed_by_the_receiver_is_replaced() -> None:
    served = 0

    async def reply_then_close(_request: bytes, writer: asyncio.StreamWriter) -> bool:
        nonlocal served
        served += 1
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()
        return False  # closes after answering, without saying Connection: close

    async with raw_server(reply_then_close) as server:
        http = client()
        try:
            for _ in range(3):
                got = await http.post(f"http://127.0.0.1:{server.port}/", headers={}, body=b"{}")
                assert got.status == 204
                await asyncio.sleep(0.05)  # the close reaches us or races the next request
        finally:
            await http.close()
    assert served == 3 and len(server.requests) == 3


async def test_a_receiver_that_stalls_after_its_status_keeps_its_status() -> None:
    async def stall(_request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await writer.drain()
        await asyncio.sleep(10)
        return False

    async with raw_server(stall) as server:
        http = client(total_timeout=0.5)
        try:
            got = await http.post(f"http://127.0.0.1:{server.port}/", headers={}, body=b"")
        finally:
            await http.close()
    assert (got.status, got.stalled) == (200, True)


async def test_a_receiver_that_never_answers_times_out() -> None:
    async def silent(_request: bytes, _writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(10)
        return False

    async with raw_server(silent) as server:
        http = client(total_timeout=0.5)
        try:
            with pytest.raises(TimeoutError):
                await http.post(f"http://127.0.0.1:{server.port}/", headers={}, body=b"")
        finally:
            await http.close()


@pytest.mark.parametrize(
    "raw",
    [
        b"SMTP 220 hello\r\n\r\n",
        b"HTTP/1.1 2x0 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70_000 + b"\r\n\r\n",
    ],
)
async def test_answers_that_are_not_http_are_refused(raw: bytes) -> None:
    async with raw_server(answer(raw, keep=False)) as server:
        http = client()
        try:
            with pytest.raises(ResponseInvalid):
                await http.post(f"http://127.0.0.1:{server.port}/", headers={}, body=b"")
        finally:
            await http.close()


async def test_addresses_outside_the_policy_and_closed_ports() -> None:
    http = client(allowed=())
    try:
        with pytest.raises(AddressRefused, match="loopback"):
            await http.post(f"http://127.0.0.1:{free_port()}/", headers={}, body=b"")
        with pytest.raises(AddressRefused, match="localhost resolves to"):
            await http.post(f"http://localhost:{free_port()}/", headers={}, body=b"")
    finally:
        await http.close()
    http = client()
    try:
        with pytest.raises(ConnectFailed):
            await http.post(f"http://127.0.0.1:{free_port()}/", headers={}, body=b"")
        with pytest.raises(ValueError, match="does not allow"):
            await http.post("http://127.0.0.1:1/", headers={"X-Evil": "a\r\nB: c"}, body=b"")
        with pytest.raises(ValueError, match="not an http"):
            await http.post("ftp://127.0.0.1/", headers={}, body=b"")
    finally:
        await http.close()


async def test_connections_per_host_are_bounded() -> None:
    open_now = 0
    most = 0

    async def slow(_request: bytes, writer: asyncio.StreamWriter) -> bool:
        nonlocal open_now, most
        open_now += 1
        most = max(most, open_now)
        await asyncio.sleep(0.05)
        open_now -= 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        return True

    async with raw_server(slow) as server:
        http = client(per_host_limit=2)
        try:
            url = f"http://127.0.0.1:{server.port}/"
            await asyncio.gather(*(http.post(url, headers={}, body=b"") for _ in range(8)))
        finally:
            await http.close()
    assert most == 2 and server.connections == 2
