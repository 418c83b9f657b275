"""Byte ranges, digest headers, package-client credentials and the upload form."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.gateway.packages.domain.credentials import BadCredentials, token_of
from services.gateway.packages.domain.digests import (
    InvalidDigestHeader,
    declared_sha256,
    digest_headers,
)
from services.gateway.packages.domain.errors import (
    InvalidUploadForm,
    MetadataMismatch,
    RangeNotSatisfiable,
)
from services.gateway.packages.domain.filenames import parse_dist_filename
from services.gateway.packages.domain.ranges import ByteRange, if_range_allows, parse_range
from services.gateway.packages.domain.upload_form import (
    DeclaredDigestMismatch,
    check_declared_digests,
    check_matches_file,
    upload_form,
)


# ---- ranges ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-9", ByteRange(0, 10)),
        ("bytes=10-", ByteRange(10, 100)),
        ("bytes=-10", ByteRange(90, 100)),
        ("bytes=-1000", ByteRange(0, 100)),
        ("bytes=90-1000", ByteRange(90, 100)),
        ("bytes=99-99", ByteRange(99, 100)),
        ("bytes=5-1", None),  # invalid: ignored, the whole
        ("items=0-1", None),
        ("bytes=0-1,5-6", None),  # several ranges: the whole
        ("bytes=-", None),
        ("bytes=abc", None),
    ],
)
def test_ranges(header: str | None, expected: ByteRange | None) -> None:
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize(
    ("header", "size"), [("bytes=100-", 100), ("bytes=-0", 100), ("bytes=0-", 0)]
)
def test_unsatisfiable_ranges(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable) as caught:
        parse_range(header, size)
    assert caught.value.status == 416
    assert caught.value.headers["Content-Range"] == f"bytes */{size}"


@given(st.integers(0, 10_000), st.integers(0, 10_000), st.integers(1, 10_000))
def test_a_range_always_lies_inside_the_artifact(first: int, last: int, size: int) -> None:
    try:
        found = parse_range(f"bytes={first}-{last}", size)
    except RangeNotSatisfiable:
        assert first >= size
        return
    if found is None:
        assert last < first
        return
    assert 0 <= found.start < found.end <= size
    assert found.content_range(size) == f"bytes {found.start}-{found.end - 1}/{size}"


def test_if_range() -> None:
    assert if_range_allows(None, '"abc"')
    assert if_range_allows('"abc"', '"abc"')
    assert not if_range_allows('"old"', '"abc"')
    assert not if_range_allows("Wed, 21 Oct 2015 07:28:00 GMT", '"abc"')


# ---- digests ---------------------------------------------------------------------------------
CONTENT = b"hello"
HEX = hashlib.sha256(CONTENT).hexdigest()
B64 = base64.b64encode(hashlib.sha256(CONTENT).digest()).decode()


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Checksum-Sha256": HEX},
        {"X-Checksum-Sha256": HEX.upper()},
        {"Digest": f"sha-256={B64}"},
        {"Digest": f"md5=xyz, SHA-256={B64}"},
        {"Repr-Digest": f"sha-256=:{B64}:"},
        {"Content-Digest": f"sha-512=:AAAA:, sha-256=:{B64}:"},
        {"X-Checksum-Sha256": HEX, "Digest": f"sha-256={B64}"},
    ],
)
def test_declared_digests(headers: dict[str, str]) -> None:
    assert declared_sha256(headers) == HEX


def test_no_declared_digest() -> None:
    assert declared_sha256({}) is None
    assert declared_sha256({"Digest": "md5=abc"}) is None


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Checksum-Sha256": "xyz"},
        {"Digest": "sha-256=***"},
        {"Digest": "sha-256=" + base64.b64encode(b"short").decode()},
        {"Repr-Digest": f"sha-256={B64}"},  # not a byte sequence
        {"Digest": "garbage"},
        {"X-Checksum-Sha256": "0" * 64, "Digest": f"sha-256={B64}"},  # disagree
    ],
)
def test_bad_digest_headers(headers: dict[str, str]) -> None:
    with pytest.raises(InvalidDigestHeader):
        declared_sha256(headers)


def test_answered_digests() -> None:
    assert digest_headers(HEX) == {"Digest": f"sha-256={B64}", "Repr-Digest": f"sha-256=:{B64}:"}


# ---- credentials -----------------------------------------------------------------------------
def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_credentials() -> None:
    assert token_of(None) is None
    assert token_of(basic("__token__", "gh_abc")) == "gh_abc"
    assert token_of(basic("__token__", "gsa_x:y")) == "gsa_x:y"  # ':' belongs to the password
    assert token_of("Bearer gh_abc") == "gh_abc"
    assert token_of("bearer   gh_abc ") == "gh_abc"


@pytest.mark.parametrize(
    "header",
    [
        basic("alice", "gh_abc"),
        basic("__token__", ""),
        "Basic !!!",
        "Digest x",
        "Basic",
        "x" * 5000,
    ],
)
def test_bad_credentials_ask_for_basic(header: str) -> None:
    with pytest.raises(BadCredentials) as caught:
        token_of(header)
    assert caught.value.status == 401
    assert caught.value.headers["WWW-Authenticate"] == 'Basic realm="gatehouse"'


# ---- upload form -----------------------------------------------------------------------------
def form(**overrides: str) -> dict[str, list[str]]:
    fields = {
        ":action": "file_upload",
        "protocol_version": "1",
        "name": "demo-pkg",
        "version": "1.0",
        "filetype": "bdist_wheel",
        "sha256_digest": HEX,
        "summary": "whatever",
    }
    fields.update(overrides)
    return {k: [v] for k, v in fields.items() if v != "<absent>"}


def test_a_twine_form() -> None:
    parsed = upload_form(form(source_repo="acme/demo", source_commit="a" * 40))
    assert (parsed.name, parsed.version, parsed.sha256) == ("demo-pkg", "1.0", HEX)
    assert parsed.provenance is not None and parsed.provenance.repo == "acme/demo"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({":action": "submit"}, ":action"),
        ({":action": "<absent>"}, ":action"),
        ({"name": "<absent>"}, "name"),
        ({"name": "bad name"}, "name"),
        ({"version": "banana"}, "version"),
        ({"filetype": "bdist_egg"}, "filetype"),
        ({"sha256_digest": "xyz"}, "sha256_digest"),
        ({"name": "a\x00b"}, "name"),
        ({"protocol_version": "2"}, "protocol_version"),
        ({"source_commit": "nothex"}, "provenance"),
    ],
)
def test_bad_forms(overrides: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidUploadForm) as caught:
        upload_form(form(**overrides))
    assert caught.value.code == "invalid_upload"
    assert field in caught.value.detail


def test_a_field_sent_twice_with_different_values_is_refused() -> None:
    fields = form()
    fields["version"] = ["1.0", "2.0"]
    with pytest.raises(InvalidUploadForm, match="more than once"):
        upload_form(fields)


def test_the_form_must_fit_the_file() -> None:
    wheel = parse_dist_filename("demo_pkg-1.0-py3-none-any.whl")
    check_matches_file(upload_form(form()), wheel)
    for overrides in ({"name": "other"}, {"version": "1.1"}, {"filetype": "sdist"}):
        with pytest.raises(MetadataMismatch):
            check_matches_file(upload_form(form(**overrides)), wheel)


def test_declared_digests_are_checked() -> None:
    parsed = upload_form(form(md5_digest="0" * 32))
    with pytest.raises(DeclaredDigestMismatch) as caught:
        check_declared_digests(parsed, sha256=HEX, md5="1" * 32, blake2_256="2" * 64)
    assert caught.value.code == "digest_mismatch"
    assert caught.value.extra["field"] == "md5_digest"
    check_declared_digests(parsed, sha256=HEX, md5="0" * 32, blake2_256="2" * 64)
