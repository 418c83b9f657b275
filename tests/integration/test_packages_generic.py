"""Generic artifacts over HTTP: PUT (digests checked), GET / HEAD with ETag, digests,
ranges and conditional requests, DELETE; traversal in every spelling refused before
anything is stored; a download that is under way when the file is deleted."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
from collections.abc import AsyncIterator

import pytest

from tests.conftest import Infra
from tests.integration.packages_support import Stack, package_stack


@pytest.fixture(scope="module")
async def stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with package_stack(infra, tmp_path_factory.mktemp("data")) as built_stack:
        yield built_stack


@pytest.fixture(scope="module")
async def operator(stack: Stack) -> str:
    return (await stack.api.new_key("OPERATOR"))[1]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def raw_request(
    stack: Stack,
    method: str,
    target: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    length: int | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request with the request target exactly as given (clients normalize
    '..' and re-encode, which would hide what these tests send)."""
    port = stack.gateway.http_port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    lines.append(f"Content-Length: {len(body) if length is None else length}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    await writer.drain()
    # The answer by its Content-Length, not until EOF: a server that answered before reading
    # an announced body may linger on the connection for it.
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    found = {}
    for line in header_lines:
        key, _, value = line.partition(":")
        found[key.strip().lower()] = value.strip()
    payload = await reader.readexactly(int(found.get("content-length", "0")))
    writer.close()
    return int(status_line.split()[1]), found, payload


async def test_put_get_head_range_delete(stack: Stack, operator: str) -> None:
    slug = await stack.new_repository("generic")
    url = f"{stack.base}/generic/{stack.project['slug']}/{slug}/tools/linux/tool-1.0.tar.gz"
    content = os.urandom(300_000)
    sha = hashlib.sha256(content).hexdigest()
    b64 = base64.b64encode(hashlib.sha256(content).digest()).decode()
    http = stack.api.http

    async with http.put(
        url, data=content, headers={**bearer(operator), "Digest": f"sha-256={b64}"}
    ) as resp:
        assert resp.status == 201, await resp.text()
        artifact = await resp.json()
        assert resp.headers["ETag"] == f'"{sha}"'
        assert resp.headers["Location"].endswith("/tools/linux/tool-1.0.tar.gz")
    assert artifact["digest"] == f"sha256:{sha}" and artifact["size"] == len(content)
    assert artifact["purl"] == "pkg:generic/tool-1.0.tar.gz"
    assert artifact["path"] == "tools/linux/tool-1.0.tar.gz"
    assert sha in stack.blob_files()

    async with http.get(url) as resp:  # a public repository: anonymous reads
        assert resp.status == 200
        assert await resp.read() == content
        assert resp.headers["ETag"] == f'"{sha}"'
        assert resp.headers["Digest"] == f"sha-256={b64}"
        assert resp.headers["Repr-Digest"] == f"sha-256=:{b64}:"
        assert resp.headers["Content-Length"] == str(len(content))
        assert resp.headers["Content-Type"] == "application/octet-stream"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
    recorded = await stack.last_event("download.recorded")
    assert recorded["data"]["digest"] == f"sha256:{sha}"

    downloads = await stack.event_count("download.recorded")
    async with http.head(url) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Length"] == str(len(content))
        assert await resp.read() == b""
    assert await stack.event_count("download.recorded") == downloads  # HEAD is no download

    async with http.get(url, headers={"Range": "bytes=100-199"}) as resp:
        assert resp.status == 206
        assert resp.headers["Content-Range"] == f"bytes 100-199/{len(content)}"
        assert await resp.read() == content[100:200]
    async with http.get(url, headers={"Range": "bytes=-10"}) as resp:
        assert resp.status == 206 and await resp.read() == content[-10:]
    async with http.get(url, headers={"Range": f"bytes={len(content)}-"}) as resp:
        assert resp.status == 416
        assert resp.headers["Content-Range"] == f"bytes */{len(content)}"
    async with http.get(url, headers={"Range": "bytes=0-9", "If-Range": '"other"'}) as resp:
        assert resp.status == 200 and len(await resp.read()) == len(content)
    async with http.get(url, headers={"If-None-Match": f'"{sha}"'}) as resp:
        assert resp.status == 304

    # Written once: the same path again is 409 and stores nothing.
    uploaded = await stack.event_count("artifact.uploaded")
    async with http.put(url, data=b"other bytes", headers=bearer(operator)) as resp:
        assert resp.status == 409 and (await resp.json())["code"] == "artifact_exists"
    assert hashlib.sha256(b"other bytes").hexdigest() not in stack.blob_files()
    assert await stack.event_count("artifact.uploaded") == uploaded

    viewer = (await stack.api.new_key("VIEWER"))[1]
    async with http.delete(url, headers=bearer(viewer)) as resp:
        assert resp.status == 403
    async with http.delete(url) as resp:
        assert resp.status == 401
    async with http.delete(url, headers=bearer(operator)) as resp:
        assert resp.status == 204
    async with http.get(url) as resp:
        assert resp.status == 404
    assert sha not in stack.blob_files()


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Checksum-Sha256": "0" * 64},
        {"Digest": "sha-256=" + base64.b64encode(b"\0" * 32).decode()},
        {"Repr-Digest": "sha-256=:" + base64.b64encode(b"\0" * 32).decode() + ":"},
    ],
)
async def test_a_wrong_declared_digest_stores_nothing(
    stack: Stack, operator: str, headers: dict[str, str]
) -> None:
    slug = await stack.new_repository("generic")
    url = f"{stack.base}/generic/{stack.project['slug']}/{slug}/file.bin"
    content = os.urandom(1000)
    uploaded = await stack.event_count("artifact.uploaded")
    async with stack.api.http.put(
        url, data=content, headers={**bearer(operator), **headers}
    ) as resp:
        assert resp.status == 400
        assert (await resp.json())["code"] == "digest_mismatch"
    assert hashlib.sha256(content).hexdigest() not in stack.blob_files()
    assert stack.staging_files() == []
    assert await stack.event_count("artifact.uploaded") == uploaded


@pytest.mark.parametrize(
    "path",
    [
        "../escape",
        "a/../../escape",
        "%2e%2e/escape",
        "a/%2E%2E/escape",
        "%252e%252e/escape",  # double-encoded
        "a%2Fb",  # an encoded '/' would make two spellings of one path
        "a%00b",
        "a%0ab",
        "a%5c..%5cb",  # backslashes
        "/etc/passwd",  # "//" after the repository: absolute
        "a//b",
        "a/",
        "C:%5Cwindows",
        "%EF%BC%8E%EF%BC%8E/escape",  # fullwidth dots
        "bad%FF",
        "x" * 1100,
        "",  # no path at all
    ],
)
async def test_traversal_in_any_spelling_is_refused(stack: Stack, operator: str, path: str) -> None:
    slug = await stack.new_repository("generic")
    blobs = stack.blob_files()
    uploaded = await stack.event_count("artifact.uploaded")
    target = f"/generic/{stack.project['slug']}/{slug}/{path}"
    status, _, body = await raw_request(
        stack, "PUT", target, headers={"Authorization": f"Bearer {operator}"}, body=b"payload"
    )
    assert status == 400, body
    assert json.loads(body)["code"] == "invalid_artifact_path"
    for method in ("GET", "DELETE"):
        status, _, body = await raw_request(
            stack, method, target, headers={"Authorization": f"Bearer {operator}"}
        )
        assert (status, json.loads(body)["code"]) == (400, "invalid_artifact_path")
    assert stack.blob_files() == blobs
    assert await stack.event_count("artifact.uploaded") == uploaded


async def test_a_download_under_way_survives_the_delete(stack: Stack, operator: str) -> None:
    """The reader that got the file keeps getting all of it; the next one gets 404."""
    slug = await stack.new_repository("generic")
    url = f"{stack.base}/generic/{stack.project['slug']}/{slug}/big.bin"
    content = os.urandom(8 << 20)
    async with stack.api.http.put(url, data=content, headers=bearer(operator)) as resp:
        assert resp.status == 201
    async with stack.api.http.get(url) as download:
        assert download.status == 200
        first = await download.content.readexactly(64 * 1024)
        async with stack.api.http.delete(url, headers=bearer(operator)) as resp:
            assert resp.status == 204
        rest = await download.read()
    assert first + rest == content
    async with stack.api.http.get(url) as resp:
        assert resp.status == 404
        assert (await resp.json())["code"] == "artifact_not_found"
    assert hashlib.sha256(content).hexdigest() not in stack.blob_files()


async def test_private_generic_repository(stack: Stack, operator: str) -> None:
    slug = await stack.new_repository("generic", visibility="private")
    url = f"{stack.base}/generic/{stack.project['slug']}/{slug}/secret.txt"
    async with stack.api.http.put(url, data=b"secret", headers=bearer(operator)) as resp:
        assert resp.status == 201
    async with stack.api.http.get(url) as resp:
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"] == 'Basic realm="gatehouse"'
    async with stack.api.http.get(url + ".missing") as resp:
        assert resp.status == 401  # missing or private: the same to an anonymous caller
    async with stack.api.http.get(url, headers=bearer(operator)) as resp:
        assert resp.status == 200 and await resp.read() == b"secret"
    async with stack.api.http.put(url + "2", data=b"x") as resp:
        assert resp.status == 401


async def test_an_upload_declared_too_large_is_refused_before_a_byte_is_read(
    stack: Stack, operator: str
) -> None:
    slug = await stack.new_repository("generic")
    limit = stack.settings.artifact_max_upload_bytes
    status, _, body = await raw_request(
        stack,
        "PUT",
        f"/generic/{stack.project['slug']}/{slug}/huge.bin",
        headers={"Authorization": f"Bearer {operator}"},
        length=limit + 1,  # and no body at all: the answer comes before any is read
    )
    assert (status, json.loads(body)["code"]) == (413, "artifact_too_large")
    assert stack.staging_files() == []
