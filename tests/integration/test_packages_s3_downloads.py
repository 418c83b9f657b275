"""Downloads through a gateway whose artifact store is S3 (moto's server, signatures checked):
the streamed path — whole files, ranges, HEAD — and its last byte held back until
``download.recorded`` is acknowledged."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.conftest import Infra
from tests.integration.artifact_blobs_support import moto_s3_server
from tests.integration.packages_support import Stack, package_stack

BUCKET = "gatehouse-downloads"


@pytest.fixture(scope="module")
async def stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    with moto_s3_server() as server:
        server.client().create_bucket(Bucket=BUCKET)
        async with package_stack(
            infra,
            tmp_path_factory.mktemp("data"),
            gateway_settings={
                "artifact_store": "s3",
                "s3_endpoint_url": server.endpoint_url,
                "s3_bucket": BUCKET,
                "s3_access_key_id": server.access_key_id,
                "s3_secret_access_key": server.secret_access_key,
                "s3_region": server.region,
                "rpc_timeout_seconds": 1.0,
            },
        ) as built_stack:
            yield built_stack


async def _put(stack: Stack, slug: str, path: str, content: bytes) -> str:
    url = f"{stack.base}/generic/{stack.project['slug']}/{slug}/{path}"
    headers = {"Authorization": f"Bearer {stack.api.admin}"}
    async with stack.api.http.put(url, data=content, headers=headers) as resp:
        assert resp.status == 201, await resp.text()
    return url


async def test_files_ranges_and_heads_stream_from_s3(stack: Stack) -> None:
    slug = await stack.new_repository("generic")
    for size in (1, 10_000, 600_000):
        content = os.urandom(size)
        url = await _put(stack, slug, f"f-{size}.bin", content)
        async with stack.api.http.get(url) as resp:
            assert resp.status == 200
            assert await resp.read() == content
        async with stack.api.http.get(url, headers={"Range": f"bytes=0-{size // 2}"}) as resp:
            assert resp.status == 206
            assert await resp.read() == content[: size // 2 + 1]
        async with stack.api.http.head(url) as resp:
            assert resp.status == 200 and resp.headers["Content-Length"] == str(size)


async def test_an_unrecorded_download_from_s3_never_completes(stack: Stack) -> None:
    slug = await stack.new_repository("generic")
    content = os.urandom(600_000)
    url = await _put(stack, slug, "large.bin", content)
    js = stack.gateway.bus.js
    info = await js.stream_info(stack.gateway.bus.stream)
    subjects = list(info.config.subjects or [])
    config = info.config
    config.subjects = [s for s in subjects if s != "download.>"]
    await js.update_stream(config)
    try:
        with pytest.raises(aiohttp.ClientPayloadError):
            async with stack.api.http.get(url) as resp:
                assert resp.status == 200
                await resp.read()
    finally:
        config.subjects = subjects
        await js.update_stream(config)
    async with stack.api.http.get(url) as resp:
        assert resp.status == 200 and await resp.read() == content
