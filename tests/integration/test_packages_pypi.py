"""The PyPI protocols with the real clients: wheels and sdists built by ``build``, uploaded
by ``twine``, resolved and installed by ``pip`` through ``/pypi/<project>/<repo>/``; the
simple index's representations; credentials; a block answering 451; and bad uploads, each
refused precisely and leaving no blob and no event."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import uuid
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from shared.blobs import BlobStore, digest_of
from tests.conftest import Infra, wait_until
from tests.integration.packages_support import (
    PYTHON,
    Built,
    Stack,
    build_distribution,
    package_stack,
    pip_download,
    run,
    sha256_of,
    twine_upload,
)

JSON_V1 = "application/vnd.pypi.simple.v1+json"


@pytest.fixture(scope="module")
async def stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with package_stack(infra, tmp_path_factory.mktemp("data")) as built_stack:
        yield built_stack


@pytest.fixture(scope="module")
async def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Built]:
    folder = tmp_path_factory.mktemp("dists")
    versions = [("gh-demo", "1.0", ">=3.9"), ("gh-demo", "1.1", ">=3.9"), ("gh-demo", "1.2", "<3")]
    built = await asyncio.gather(
        *(build_distribution(folder, name, v, requires_python=rp) for name, v, rp in versions)
    )
    return {v: b for (_, v, _), b in zip(versions, built, strict=True)}


@pytest.fixture(scope="module")
async def operator(stack: Stack) -> str:
    return (await stack.api.new_key("OPERATOR"))[1]


async def get(
    stack: Stack, path: str, *, headers: dict[str, str] | None = None, token: str | None = None
) -> tuple[int, Any, bytes]:
    sent = dict(headers or {})
    if token:
        sent["Authorization"] = basic(token)
    async with stack.api.http.get(stack.base + path, headers=sent, allow_redirects=False) as resp:
        return resp.status, resp.headers, await resp.read()


async def test_twine_uploads_and_pip_installs(
    stack: Stack, dists: dict[str, Built], operator: str, tmp_path: Path
) -> None:
    slug = await stack.new_repository("pypi")
    url = stack.pypi_url(slug)
    files = [f for b in dists.values() for f in (b.wheel, b.sdist)]
    code, out = await twine_upload(url + "/", operator, *files)
    assert code == 0, out
    assert await stack.event_count("artifact.uploaded") >= len(files)

    # pip resolves through the JSON index, skips 1.2 (Requires-Python <3), installs 1.1.
    target = tmp_path / "site"
    code, out = await run(
        PYTHON, "-m", "pip", "install", "--no-deps", "--target", str(target),
        "--index-url", f"{url}/simple/", "gh-demo",
    )  # fmt: skip
    assert code == 0, out
    assert (target / "gh_demo" / "__init__.py").read_text() == 'VERSION = "1.1"\n'

    code, out = await pip_download(f"{url}/simple/", "gh-demo==1.0", tmp_path / "dl")
    assert code == 0, out
    fetched = tmp_path / "dl" / dists["1.0"].wheel.name
    assert sha256_of(fetched) == sha256_of(dists["1.0"].wheel)
    recorded = await stack.last_event("download.recorded")
    assert recorded["data"]["principal"] == "anonymous"
    assert recorded["data"]["address"] == "127.0.0.1"
    assert recorded["data"]["purl"] == "pkg:pypi/gh-demo@1.0"


async def test_the_simple_index(stack: Stack, dists: dict[str, Built], operator: str) -> None:
    slug = await stack.new_repository("pypi")
    url = stack.pypi_url(slug)
    code, out = await twine_upload(url + "/", operator, dists["1.0"].wheel, dists["1.0"].sdist)
    assert code == 0, out
    prefix = f"/pypi/{stack.project['slug']}/{slug}"

    status, headers, body = await get(stack, f"{prefix}/simple/", headers={"Accept": JSON_V1})
    assert status == 200 and headers["Content-Type"] == JSON_V1
    assert json.loads(body)["projects"] == [{"name": "gh-demo"}]

    status, headers, body = await get(
        stack, f"{prefix}/simple/gh-demo/", headers={"Accept": JSON_V1}
    )
    assert status == 200
    document = json.loads(body)
    assert document["versions"] == ["1.0"]
    wheel = next(f for f in document["files"] if f["filename"].endswith(".whl"))
    assert wheel["hashes"]["sha256"] == sha256_of(dists["1.0"].wheel)
    assert wheel["requires-python"] == ">=3.9"
    # PEP 658: the metadata file beside the wheel is the wheel's own METADATA.
    with zipfile.ZipFile(dists["1.0"].wheel) as archive:
        metadata = archive.read("gh_demo-1.0.dist-info/METADATA")
    assert wheel["core-metadata"] == {"sha256": hashlib.sha256(metadata).hexdigest()}
    file_url = f"{prefix}/simple/gh-demo/{wheel['url']}"
    status, _, served = await get(stack, file_url + ".metadata")
    assert (status, served) == (200, metadata)
    before = await stack.event_count("download.recorded")
    status, headers, served = await get(stack, file_url)
    assert status == 200 and hashlib.sha256(served).hexdigest() == wheel["hashes"]["sha256"]
    assert headers["ETag"] == f'"{wheel["hashes"]["sha256"]}"'
    assert await stack.event_count("download.recorded") == before + 1  # not for .metadata

    status, headers, html = await get(
        stack, f"{prefix}/simple/gh-demo/", headers={"Accept": "text/html"}
    )
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'data-requires-python="&gt;=3.9"' in html
    assert f'data-core-metadata="sha256={hashlib.sha256(metadata).hexdigest()}"'.encode() in html

    # ETag per representation; If-None-Match answers 304.
    status, headers, _ = await get(stack, f"{prefix}/simple/gh-demo/", headers={"Accept": JSON_V1})
    status, _, _ = await get(
        stack,
        f"{prefix}/simple/gh-demo/",
        headers={"Accept": JSON_V1, "If-None-Match": headers["ETag"]},
    )
    assert status == 304
    # A name that is not normalized is redirected; an unknown media type is 406.
    status, headers, _ = await get(stack, f"{prefix}/simple/GH_Demo/")
    assert status == 301 and headers["Location"] == f"{prefix}/simple/gh-demo/"
    status, _, body = await get(
        stack, f"{prefix}/simple/gh-demo/", headers={"Accept": "application/json"}
    )
    assert status == 406 and json.loads(body)["code"] == "not_acceptable"
    status, _, body = await get(stack, f"{prefix}/simple/nothing-here/")
    assert status == 404


async def test_a_reupload_is_409_and_changes_nothing(
    stack: Stack, dists: dict[str, Built], operator: str
) -> None:
    slug = await stack.new_repository("pypi")
    url = stack.pypi_url(slug) + "/"
    assert (await twine_upload(url, operator, dists["1.1"].wheel))[0] == 0
    blobs = stack.blob_files()
    uploaded = await stack.event_count("artifact.uploaded")
    code, out = await twine_upload(url, operator, dists["1.1"].wheel)
    assert code != 0 and "409" in out, out
    assert "is already in" in out  # the reason phrase twine prints
    assert stack.blob_files() == blobs
    assert await stack.event_count("artifact.uploaded") == uploaded


async def test_credentials(
    stack: Stack, dists: dict[str, Built], operator: str, tmp_path: Path
) -> None:
    slug = await stack.new_repository("pypi", visibility="private")
    url = stack.pypi_url(slug)
    prefix = f"/pypi/{stack.project['slug']}/{slug}"
    viewer = (await stack.api.new_key("VIEWER"))[1]

    # Uploads: no credentials 401 (Basic challenge), a VIEWER 403, an OPERATOR passes.
    code, out = await twine_upload(url + "/", viewer, dists["1.0"].wheel)
    assert code != 0 and "403" in out, out
    code, out = await twine_upload(url + "/", "gh_not_a_real_token_0000000000", dists["1.0"].wheel)
    assert code != 0 and "401" in out, out
    assert (await twine_upload(url + "/", operator, dists["1.0"].wheel))[0] == 0

    # Private reads: anonymous 401 with the Basic challenge, for a missing repository too.
    for path in (f"{prefix}/simple/", f"/pypi/{stack.project['slug']}/no-such-repo/simple/"):
        status, headers, _ = await get(stack, path)
        assert status == 401
        assert headers["WWW-Authenticate"] == 'Basic realm="gatehouse"'
    status, _, _ = await get(stack, f"{prefix}/simple/", token=viewer)
    assert status == 200
    code, out = await pip_download(f"{url}/simple/", "gh-demo", tmp_path / "anon")
    assert code != 0
    code, out = await pip_download(
        f"{stack.pypi_url(slug, token=viewer)}/simple/", "gh-demo", tmp_path / "dl"
    )
    assert code == 0, out
    recorded = await stack.last_event("download.recorded")
    assert recorded["data"]["principal"].startswith("apikey:")

    # A key scoped to another project sees nothing here.
    other = await stack.api.new_project()
    scoped = (await stack.api.new_key("OPERATOR", project=other["id"]))[1]
    status, _, _ = await get(stack, f"{prefix}/simple/", token=scoped)
    assert status == 404
    code, out = await twine_upload(url + "/", scoped, dists["1.1"].wheel)
    assert code != 0 and "404" in out


async def test_a_block_answers_451_and_pip_fails(
    stack: Stack, operator: str, tmp_path: Path
) -> None:
    # A package of its own: a block by digest holds in every repository.
    built = await build_distribution(tmp_path, "gh-blocked", "1.0")
    slug = await stack.new_repository("pypi")
    url = stack.pypi_url(slug)
    assert (await twine_upload(url + "/", operator, built.wheel))[0] == 0
    block_id = await stack.block(
        digest=f"sha256:{sha256_of(built.wheel)}",
        reason="Malicious code in setup",
        customer_message="Use gh-blocked 1.1",
    )
    hits = await stack.event_count("block.hit")
    downloads = await stack.event_count("download.recorded")
    code, out = await pip_download(f"{url}/simple/", "gh-blocked", tmp_path / "dl")
    assert code != 0 and "451" in out, out
    assert await stack.event_count("block.hit") == hits + 1
    prefix = f"/pypi/{stack.project['slug']}/{slug}"
    wheel = built.wheel
    status, _, body = await get(stack, f"{prefix}/files/{sha256_of(wheel)}/{wheel.name}")
    assert status == 451
    problem = json.loads(body)
    assert {k: problem[k] for k in ("block_id", "reason", "customer_message", "blocked_until")} == {
        "block_id": block_id,
        "reason": "Malicious code in setup",
        "customer_message": "Use gh-blocked 1.1",
        "blocked_until": None,
    }
    assert problem["public_url"] == f"{stack.base}/blocked/{block_id}"
    # The page to share: no token, the same explanation.
    status, headers, page = await get(stack, f"/blocked/{block_id}")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b"Malicious code in setup" in page and b"Use gh-blocked 1.1" in page
    status, _, page = await get(stack, "/blocked/00000000-0000-4000-8000-000000000000")
    assert status == 200 and b"Not blocked" in page  # lifted, or never was
    status, _, _ = await get(stack, "/blocked/not-an-id")
    assert status == 404
    hit = await stack.last_event("block.hit")
    assert hit["data"]["block_id"] == block_id and hit["data"]["principal"] == "anonymous"
    assert await stack.event_count("download.recorded") == downloads  # refused: no download


# ---- bad uploads ----------------------------------------------------------------------------
def wheel_bytes(
    name: str, version: str, *, metadata_name: str | None = None, extra: bytes = b""
) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            f"{name}-{version}.dist-info/METADATA",
            f"Metadata-Version: 2.1\nName: {metadata_name or name}\nVersion: {version}\n",
        )
        archive.writestr(f"{name}/__init__.py", b"X = 1\n" + extra)
    return buffer.getvalue()


async def post_upload(
    stack: Stack,
    slug: str,
    content: bytes,
    filename: str,
    *,
    token: str,
    fields: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any], str]:
    stem = filename.removesuffix(".whl").removesuffix(".tar.gz").split("-")
    values = {
        ":action": "file_upload",
        "protocol_version": "1",
        "name": stem[0],
        "version": stem[1],
        "filetype": "bdist_wheel" if filename.endswith(".whl") else "sdist",
        "sha256_digest": hashlib.sha256(content).hexdigest(),
        **(fields or {}),
    }
    body, content_type = multipart(values, filename, content)
    async with stack.api.http.post(
        f"{stack.base}/pypi/{stack.project['slug']}/{slug}/",
        data=body,
        headers={"Content-Type": content_type, "Authorization": basic(token)},
    ) as resp:
        return resp.status, await resp.json(content_type=None), resp.reason or ""


def multipart(fields: dict[str, str], filename: str, content: bytes) -> tuple[bytes, str]:
    """The form as twine sends it, built by hand (an HTTP client refuses some of the file
    names these tests send on purpose)."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    disposition = f"filename*=UTF-8''{filename}" if "%" in filename else f'filename="{filename}"'
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="content"; {disposition}'
        "\r\nContent-Type: application/octet-stream\r\n\r\n".encode()
        + content
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def basic(token: str) -> str:
    return "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode()


def bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "bomb-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: bomb\nVersion: 1.0\n"
        )
        archive.writestr("bomb/zeros.bin", b"\0" * (64 << 20))  # 64 MiB of zeros, ~64 KiB zipped
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("metadata_mismatch", 400, "metadata_mismatch"),
        ("corrupt_zip", 400, "corrupt_archive"),
        ("zip_bomb", 400, "archive_too_expanded"),
        ("sha256_mismatch", 400, "digest_mismatch"),
        ("traversal_filename", 400, "invalid_artifact_path"),
        ("nul_filename", 400, "invalid_artifact_path"),
        ("raw_nul_in_part_header", 400, "invalid_upload"),
        ("form_name_differs", 400, "metadata_mismatch"),
        ("not_a_distribution", 400, "invalid_distribution"),
        ("register_action", 400, "invalid_upload"),
    ],
)
async def test_bad_uploads_are_refused_leaving_nothing(
    stack: Stack, operator: str, case: str, status: int, code: str
) -> None:
    slug = await stack.new_repository("pypi")
    good = wheel_bytes("demo", "1.0")
    filename, content, fields = "demo-1.0-py3-none-any.whl", good, {}
    if case == "metadata_mismatch":
        content = wheel_bytes("demo", "1.0", metadata_name="evil")
    elif case == "corrupt_zip":
        content = good[: len(good) // 2] + b"\0" * 64
    elif case == "zip_bomb":
        filename, content = "bomb-1.0-py3-none-any.whl", bomb()
    elif case == "sha256_mismatch":
        fields = {"sha256_digest": "0" * 64}
    elif case == "traversal_filename":
        filename = "../demo-1.0-py3-none-any.whl"
    elif case == "nul_filename":
        filename = "demo-1.0-py3-none-any%00.whl"  # RFC 5987 filename*, decoded by the server
    elif case == "raw_nul_in_part_header":
        filename = "demo-1.0-py3-none-any\x00.whl"
    elif case == "form_name_differs":
        fields = {"name": "other"}
    elif case == "not_a_distribution":
        filename, fields = "demo-1.0.exe", {"version": "1.0"}
    elif case == "register_action":
        fields = {":action": "submit"}
    blobs = stack.blob_files()
    uploaded = await stack.event_count("artifact.uploaded")
    got, problem, reason = await post_upload(
        stack, slug, content, filename, token=operator, fields=fields
    )
    assert (got, problem["code"]) == (status, code), problem
    assert reason == " ".join(problem["detail"].split())[:300]  # twine prints the reason
    assert stack.blob_files() == blobs
    assert stack.staging_files() == []
    assert await stack.event_count("artifact.uploaded") == uploaded


async def test_concurrent_uploads_of_one_file_store_it_once(stack: Stack, operator: str) -> None:
    slug = await stack.new_repository("pypi")
    content = wheel_bytes("race", "1.0")
    uploaded = await stack.event_count("artifact.uploaded")
    results = await asyncio.gather(
        *(
            post_upload(stack, slug, content, "race-1.0-py3-none-any.whl", token=operator)
            for _ in range(6)
        )
    )
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [200, 409, 409, 409, 409, 409], results
    assert all(p["code"] == "artifact_exists" for s, p, _ in results if s == 409)
    assert await stack.event_count("artifact.uploaded") == uploaded + 1
    assert hashlib.sha256(content).hexdigest() in stack.blob_files()
    status, _, body = await get(
        stack,
        f"/pypi/{stack.project['slug']}/{slug}/files/{hashlib.sha256(content).hexdigest()}/race-1.0-py3-none-any.whl",
    )
    assert (status, body) == (200, content)


async def test_an_upload_into_a_generic_repository_is_refused_before_reading(
    stack: Stack, operator: str
) -> None:
    slug = await stack.new_repository("generic")
    status, problem, _ = await post_upload(
        stack, slug, wheel_bytes("demo", "1.0"), "demo-1.0-py3-none-any.whl", token=operator
    )
    assert (status, problem["code"]) == (400, "repository_format_mismatch")


def wheel_with_sbom(name: str, sbom: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            f"{name}-1.0.dist-info/METADATA", f"Metadata-Version: 2.5\nName: {name}\nVersion: 1.0\n"
        )
        archive.writestr(f"{name}-1.0.dist-info/sboms/bom.cdx.json", sbom)
        archive.writestr(f"{name}/__init__.py", b"")
    return buffer.getvalue()


def cyclonedx(component: str) -> bytes:
    return json.dumps(
        {
            "bomFormat": "CycloneDX",
            "specVersion": "1.6",
            "components": [
                {
                    "type": "library",
                    "name": component,
                    "version": "1.0",
                    "purl": f"pkg:pypi/{component}@1.0",
                }
            ],
        }
    ).encode()


async def test_pep770_sboms_are_stored_for_the_scan_and_taken_back_on_refusal(
    stack: Stack, operator: str
) -> None:
    slug = await stack.new_repository("pypi", quota_artifacts=1)
    evidence = await BlobStore.open(stack.gateway.bus)
    first_sbom, second_sbom = cyclonedx("left-pad"), cyclonedx("right-pad")
    status, artifact, _ = await post_upload(
        stack,
        slug,
        wheel_with_sbom("sbomful", first_sbom),
        "sbomful-1.0-py3-none-any.whl",
        token=operator,
    )
    assert status == 200, artifact
    assert await evidence.exists(digest_of(first_sbom))
    assert await evidence.get(digest_of(first_sbom)) == first_sbom

    # Over the repository's quota: refused by the scanner after this upload stored its blobs
    # (the wheel, its METADATA, its SBOM); every one of them is taken back.
    second = wheel_with_sbom("sbomless", second_sbom)
    blobs = stack.blob_files()
    uploaded = await stack.event_count("artifact.uploaded")
    status, problem, _ = await post_upload(
        stack, slug, second, "sbomless-1.0-py3-none-any.whl", token=operator
    )
    assert (status, problem["code"]) == (507, "quota_exceeded"), problem
    assert stack.blob_files() == blobs
    assert not await evidence.exists(digest_of(second_sbom))
    assert await stack.event_count("artifact.uploaded") == uploaded


async def test_a_service_account_token_uploads_and_reads_its_own_project(
    stack: Stack, dists: dict[str, Built], tmp_path: Path
) -> None:
    project = stack.project["slug"]
    account = await stack.api.call(
        "POST",
        f"/api/v1/projects/{project}/service_accounts",
        json={"name": f"ci-{uuid.uuid4().hex[:6]}", "roles": ["VIEWER", "OPERATOR"]},
    )
    assert account.status == 201, account.body
    tokens = f"/api/v1/projects/{project}/service_accounts/{account.body['id']}/tokens"
    minted = await stack.api.call("POST", tokens, json={"name": "uploader"})
    reader = await stack.api.call("POST", tokens, json={"name": "reader", "roles": ["VIEWER"]})
    uploader, viewer = minted.body["token"], reader.body["token"]
    assert uploader.startswith("gsa_")
    slug = await stack.new_repository("pypi", visibility="private")
    url = stack.pypi_url(slug)

    code, out = await twine_upload(url + "/", viewer, dists["1.1"].wheel)
    assert code != 0 and "403" in out, out
    code, out = await twine_upload(url + "/", uploader, dists["1.1"].wheel)
    assert code == 0, out
    uploaded = await stack.last_event("artifact.uploaded")
    assert uploaded["data"]["uploaded_by"] == f"serviceaccount:{account.body['id']}"

    code, out = await pip_download(
        f"{stack.pypi_url(slug, token=viewer)}/simple/", "gh-demo", tmp_path / "dl"
    )
    assert code == 0, out
    recorded = await stack.last_event("download.recorded")
    assert recorded["data"]["principal"] == f"serviceaccount:{account.body['id']}"

    # Another project's repository does not exist for it.
    other = await stack.api.new_project()
    elsewhere = await stack.new_repository("pypi", project=other["id"])
    code, out = await twine_upload(
        f"{stack.base}/pypi/{other['slug']}/{elsewhere}/", uploader, dists["1.1"].wheel
    )
    assert code != 0 and "404" in out, out


async def test_a_quarantined_file_is_451_until_its_scan_passes_or_it_is_released(
    stack: Stack, dists: dict[str, Built], operator: str, tmp_path: Path
) -> None:
    slug = await stack.new_repository("pypi", quarantine_new=True)
    url = stack.pypi_url(slug)
    # A clean wheel: its scan on upload passes and releases it, pip gets it at once.
    wheel = dists["1.1"].wheel
    assert (await twine_upload(url + "/", operator, wheel))[0] == 0
    clean = f"/pypi/{stack.project['slug']}/{slug}/files/{sha256_of(wheel)}/{wheel.name}"

    async def released() -> bool:
        return (await get(stack, clean))[0] == 200

    await wait_until(released, timeout=10, interval=0.02)
    code, out = await pip_download(f"{url}/simple/", "gh-demo", tmp_path / "dl")
    assert code == 0, out

    # A wheel whose PEP 770 SBOM is not one: its scan on upload fails, it stays held.
    held = wheel_with_sbom("heldpkg", b"not an SBOM")
    status, answer, _ = await post_upload(
        stack, slug, held, "heldpkg-1.0-py3-none-any.whl", token=operator
    )
    assert status == 200, answer
    found = await stack.api.call(
        "GET", f"/api/v1/artifacts?q=heldpkg-1.0&repo={stack.project['id']}/{slug}"
    )
    artifact_id = found.body["items"][0]["id"]

    async def scan_failed() -> bool:
        reply = await stack.api.call("GET", f"/api/v1/artifacts/{artifact_id}")
        return bool(reply.body["scan_status"] == "failed")

    await wait_until(scan_failed, timeout=10)
    files = f"/pypi/{stack.project['slug']}/{slug}/files"
    path = f"{files}/{hashlib.sha256(held).hexdigest()}/heldpkg-1.0-py3-none-any.whl"
    hits = await stack.event_count("block.hit")
    status, _, body = await get(stack, path)
    problem = json.loads(body)
    assert (status, problem["code"]) == (451, "artifact_quarantined"), problem
    assert problem["public_url"] == f"{stack.base}/blocked/{problem['block_id']}"
    assert await stack.event_count("block.hit") == hits  # a quarantine is not a block
    status, _, page = await get(stack, f"/blocked/{problem['block_id']}")
    assert status == 200 and b"Held in quarantine" in page

    released_by_admin = await stack.api.call(
        "POST", f"/api/admin/quarantine/{artifact_id}/release", json={"reason": "reviewed"}
    )
    assert released_by_admin.status == 200, released_by_admin.body
    assert (await get(stack, path))[0] == 200
