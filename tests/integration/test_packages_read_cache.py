"""The gateway's hot copy of registry reads and the download record, against the real
gateway and scanner: a block made through this gateway applies to the very next download,
one made elsewhere as soon as its event arrives; a download whose ``download.recorded``
JetStream does not take never hands the client the whole file."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from contracts.rpc import registry as rpc
from services.gateway.packages.http.metrics import DOWNLOAD_RECORDS_FAILED
from services.gateway.packages.read_cache import READS
from shared.rpc import CallContext, call
from tests.conftest import Infra
from tests.integration.packages_support import Stack, package_stack

# A failed record gives up after the gateway's RPC timeout: short here.
RPC_TIMEOUT_SECONDS = 1.0
EVENT_WAIT_SECONDS = 10.0


@pytest.fixture(scope="module")
async def stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with package_stack(
        infra,
        tmp_path_factory.mktemp("data"),
        gateway_settings={"rpc_timeout_seconds": RPC_TIMEOUT_SECONDS},
    ) as built_stack:
        yield built_stack


def _auth(stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.api.admin}"}


async def _put(stack: Stack, slug: str, path: str, content: bytes) -> str:
    url = f"{stack.base}/generic/{stack.project['slug']}/{slug}/{path}"
    async with stack.api.http.put(url, data=content, headers=_auth(stack)) as resp:
        assert resp.status == 201, await resp.text()
    return url


async def _get(stack: Stack, url: str) -> tuple[int, bytes]:
    async with stack.api.http.get(url) as resp:
        return resp.status, await resp.read()


def _hits() -> float:
    return READS.labels("fetch", "hit")._value.get()


async def _until_hot(stack: Stack, url: str, content: bytes) -> None:
    """Download until an answer comes from the hot copy. The first may not be kept: the
    scan on upload's events can reach this gateway before the scanner's read model."""
    deadline = time.monotonic() + EVENT_WAIT_SECONDS
    while True:
        hits = _hits()
        assert await _get(stack, url) == (200, content)
        if _hits() == hits + 1:
            return
        assert time.monotonic() < deadline, "no download was answered from the hot copy"
        await asyncio.sleep(0.01)


async def test_a_block_made_through_the_gateway_applies_to_the_next_download(
    stack: Stack,
) -> None:
    slug = await stack.new_repository("generic")
    content = os.urandom(5000)
    url = await _put(stack, slug, "tool.bin", content)
    await _until_hot(stack, url, content)

    digest = "sha256:" + hashlib.sha256(content).hexdigest()
    await stack.block(digest=digest, reason="bench cache test")
    status, _ = await _get(stack, url)
    assert status == 451


async def test_a_block_made_elsewhere_applies_once_its_event_arrives(stack: Stack) -> None:
    slug = await stack.new_repository("generic")
    content = os.urandom(5000)
    url = await _put(stack, slug, "other.bin", content)
    await _until_hot(stack, url, content)

    # Straight to the scanner, as another gateway replica (or an OSV import) would: this
    # gateway learns of it from block.created only.
    await call(
        stack.owner.bus,
        rpc.SERVICE,
        rpc.BLOCK_CREATE,
        rpc.BlockBody(digest="sha256:" + hashlib.sha256(content).hexdigest(), reason="elsewhere"),
        rpc.Block,
        ctx=CallContext(request_id="test", actor="apikey:test", roles=("ADMIN",)),
        timeout=10,
    )
    deadline = time.monotonic() + EVENT_WAIT_SECONDS
    while (status := (await _get(stack, url))[0]) == 200:
        assert time.monotonic() < deadline, "the block's event never dropped the hot copy"
        await asyncio.sleep(0.01)
    assert status == 451


async def _stream_subjects(stack: Stack, subjects: list[str]) -> None:
    js = stack.gateway.bus.js
    info = await js.stream_info(stack.gateway.bus.stream)
    config = info.config
    config.subjects = subjects
    await js.update_stream(config)


async def test_a_download_that_cannot_be_recorded_never_completes(stack: Stack) -> None:
    slug = await stack.new_repository("generic")
    small = os.urandom(10_000)  # written from memory
    large = os.urandom(600_000)  # written with sendfile
    urls = {
        "small": (await _put(stack, slug, "small.bin", small), small),
        "large": (await _put(stack, slug, "large.bin", large), large),
    }
    empty_url = await _put(stack, slug, "empty.bin", b"")
    for url, content in urls.values():
        await _until_hot(stack, url, content)

    info = await stack.gateway.bus.js.stream_info(stack.gateway.bus.stream)
    subjects = list(info.config.subjects or [])
    failed = DOWNLOAD_RECORDS_FAILED._value.get()
    await _stream_subjects(stack, [s for s in subjects if s != "download.>"])
    try:
        for url, _ in urls.values():
            with pytest.raises(aiohttp.ClientPayloadError):
                async with stack.api.http.get(url) as resp:
                    assert resp.status == 200
                    await resp.read()
        # Nothing to hold back of an empty file: refused before the headers.
        async with stack.api.http.get(empty_url) as resp:
            assert resp.status == 503
            assert (await resp.json())["code"] == "download_not_recorded"
    finally:
        await _stream_subjects(stack, subjects)
    assert DOWNLOAD_RECORDS_FAILED._value.get() == failed + 3
    for url, content in urls.values():
        assert await _get(stack, url) == (200, content)
