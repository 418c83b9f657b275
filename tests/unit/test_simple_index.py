"""The simple repository API's representations: content negotiation (PEP 691), PEP 503
HTML and PEP 691/700 JSON, escaping."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from services.gateway.packages.domain.errors import NotAcceptable
from services.gateway.packages.domain.simple_index import (
    HTML_V1,
    JSON_V1,
    TEXT_HTML,
    IndexedFile,
    negotiate,
    project_list,
    project_page,
    versions_of,
)

PIP_ACCEPT = (
    "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, "
    "text/html; q=0.01"
)


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, TEXT_HTML),
        ("", TEXT_HTML),
        ("*/*", TEXT_HTML),
        (PIP_ACCEPT, JSON_V1),
        ("text/html", TEXT_HTML),
        ("application/vnd.pypi.simple.v1+html", HTML_V1),
        ("application/vnd.pypi.simple.latest+json", JSON_V1),
        ("application/vnd.pypi.simple.latest+html", HTML_V1),
        ("text/html, application/vnd.pypi.simple.v1+json", JSON_V1),  # equal q: JSON
        ("text/html;q=0.9, application/vnd.pypi.simple.v1+json;q=0.5", TEXT_HTML),
        ("application/json, */*;q=0.1", TEXT_HTML),
        ("text/*", TEXT_HTML),
        ("*/*;q=1, application/vnd.pypi.simple.v1+json;q=0.5", TEXT_HTML),
        ("TEXT/HTML", TEXT_HTML),
    ],
)
def test_negotiation(accept: str | None, chosen: str) -> None:
    assert negotiate(accept) == chosen


@pytest.mark.parametrize(
    "accept",
    ["application/json", "image/png", "text/html;q=0", "application/vnd.pypi.simple.v2+json"],
)
def test_nothing_acceptable_is_406(accept: str) -> None:
    with pytest.raises(NotAcceptable) as caught:
        negotiate(accept)
    assert caught.value.status == 406


AT = dt.datetime(2026, 1, 2, 3, 4, 5, 600_000, tzinfo=dt.UTC)
WHEEL = IndexedFile(
    filename="demo-1.0-py3-none-any.whl",
    sha256="a" * 64,
    size=1234,
    requires_python=">=3.9,<4",
    metadata_sha256="b" * 64,
    uploaded_at=AT,
)
SDIST = IndexedFile(
    filename="demo-1.0.tar.gz",
    sha256="c" * 64,
    size=99,
    requires_python=None,
    metadata_sha256=None,
    uploaded_at=AT,
)


def test_project_page_html_is_pep503() -> None:
    page = project_page("demo", [WHEEL, SDIST], TEXT_HTML).decode()
    assert '<meta name="pypi:repository-version" content="1.1">' in page
    assert (
        f'<a href="../../files/{"a" * 64}/demo-1.0-py3-none-any.whl#sha256={"a" * 64}" '
        'data-requires-python="&gt;=3.9,&lt;4" '
        f'data-dist-info-metadata="sha256={"b" * 64}" '
        f'data-core-metadata="sha256={"b" * 64}">demo-1.0-py3-none-any.whl</a>'
    ) in page
    sdist_link = f'<a href="../../files/{"c" * 64}/demo-1.0.tar.gz#sha256={"c" * 64}">'
    assert sdist_link in page


def test_project_page_json_is_pep691_v1_1() -> None:
    document = json.loads(project_page("demo", [WHEEL, SDIST], JSON_V1))
    assert document["meta"] == {"api-version": "1.1"}
    assert document["name"] == "demo"
    assert document["versions"] == ["1.0"]
    by_name = {f["filename"]: f for f in document["files"]}
    wheel, sdist = by_name["demo-1.0-py3-none-any.whl"], by_name["demo-1.0.tar.gz"]
    assert wheel == {
        "filename": "demo-1.0-py3-none-any.whl",
        "url": f"../../files/{'a' * 64}/demo-1.0-py3-none-any.whl",
        "hashes": {"sha256": "a" * 64},
        "requires-python": ">=3.9,<4",
        "core-metadata": {"sha256": "b" * 64},
        "dist-info-metadata": {"sha256": "b" * 64},
        "size": 1234,
        "upload-time": "2026-01-02T03:04:05.600000Z",
        "yanked": False,
    }
    assert sdist["core-metadata"] is False
    assert "requires-python" not in sdist


def test_project_list_both_ways() -> None:
    html = project_list(["b-pkg", "a"], TEXT_HTML).decode()
    assert html.index('<a href="a/">a</a>') < html.index('<a href="b-pkg/">b-pkg</a>')
    document = json.loads(project_list(["b-pkg", "a"], JSON_V1))
    assert document == {
        "meta": {"api-version": "1.1"},
        "projects": [{"name": "a"}, {"name": "b-pkg"}],
    }


def test_markup_in_values_is_escaped() -> None:
    hostile = IndexedFile(
        filename="demo-1.0.tar.gz",
        sha256="d" * 64,
        size=1,
        requires_python='>=3"><script>alert(1)</script>',
        metadata_sha256=None,
        uploaded_at=AT,
    )
    page = project_page("demo", [hostile], TEXT_HTML).decode()
    assert "<script>" not in page
    assert "&quot;&gt;&lt;script&gt;" in page


def test_versions_are_in_pep440_order() -> None:
    names = ["d-1.10.tar.gz", "d-1.9-py3-none-any.whl", "d-1.9.tar.gz", "d-1.0rc1.tar.gz", "junk"]
    assert versions_of(names) == ["1.0rc1", "1.9", "1.10"]
