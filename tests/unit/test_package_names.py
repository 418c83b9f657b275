"""PEP 503 names, wheel and sdist file names, purls."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.gateway.packages.domain.errors import InvalidDistribution
from services.gateway.packages.domain.filenames import parse_dist_filename
from services.gateway.packages.domain.names import (
    canonical_version,
    generic_purl,
    is_normalized,
    is_valid_name,
    normalize_name,
    pypi_purl,
    same_version,
)


@pytest.mark.parametrize(
    ("name", "normalized"),
    [
        ("Django", "django"),
        ("zope.interface", "zope-interface"),
        ("Foo__Bar", "foo-bar"),
        ("foo-_.-bar", "foo-bar"),
        ("A", "a"),
    ],
)
def test_pep503_normalization(name: str, normalized: str) -> None:
    assert normalize_name(name) == normalized
    assert is_normalized(normalized)


@given(st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,30}[A-Za-z0-9])?", fullmatch=True))
def test_normalization_is_idempotent_and_keeps_names_valid(name: str) -> None:
    assert is_valid_name(name)
    once = normalize_name(name)
    assert normalize_name(once) == once
    assert is_valid_name(once)


@pytest.mark.parametrize("name", ["", "-foo", "foo-", "foo bar", "foo/bar", "x" * 201, "föö"])
def test_invalid_names(name: str) -> None:
    assert not is_valid_name(name)


def test_versions_compare_as_pep440() -> None:
    assert same_version("1.0", "1.0.0")
    assert same_version("1.0-1", "1.0.post1")
    assert not same_version("1.0", "1.0.1")
    assert canonical_version("1.0-RC1") == "1.0rc1"
    assert canonical_version("not a version") is None


def test_purls() -> None:
    assert pypi_purl("Foo.Bar_baz", "1.0-RC1") == "pkg:pypi/foo-bar-baz@1.0rc1"
    assert pypi_purl("demo", "1.0+local.1") == "pkg:pypi/demo@1.0%2Blocal.1"
    assert generic_purl("tools/linux/tool v1.tar.gz") == "pkg:generic/tool%20v1.tar.gz"


@pytest.mark.parametrize(
    ("filename", "name", "version", "kind"),
    [
        ("demo-1.0-py3-none-any.whl", "demo", "1.0", "wheel"),
        ("demo_pkg-2.0.1-1-cp311-cp311-manylinux_2_17_x86_64.whl", "demo_pkg", "2.0.1", "wheel"),
        ("Demo.Pkg-1.0-py2.py3-none-any.whl", "Demo.Pkg", "1.0", "wheel"),
        ("demo_pkg-1.0.tar.gz", "demo_pkg", "1.0", "sdist"),  # PEP 625
        ("Demo-Pkg-1.0.tar.gz", "Demo-Pkg", "1.0", "sdist"),  # legacy, hyphenated name
        ("demo-1.0.zip", "demo", "1.0", "sdist"),  # legacy .zip
    ],
)
def test_distribution_file_names(filename: str, name: str, version: str, kind: str) -> None:
    dist = parse_dist_filename(filename)
    assert (dist.name, dist.version, dist.kind) == (name, version, kind)


def test_a_legacy_sdist_is_split_where_the_form_name_ends() -> None:
    # Without the name the last '-' splits ("foo-bar-1.0" / "1"); the form says better.
    dist = parse_dist_filename("foo-bar-1.0-1.tar.gz", name_hint="foo_bar")
    assert (dist.normalized_name, dist.canonical_version) == ("foo-bar", "1.0.post1")


@pytest.mark.parametrize(
    "filename",
    [
        "demo-1.0.exe",
        "demo-1.0.tar.bz2",
        "demo.whl",
        "demo-1.0-py3-none.whl",  # too few parts
        "demo-notaversion-py3-none-any.whl",
        "demo-notaversion.tar.gz",
        "demo.tar.gz",
        "-1.0.tar.gz",
        "de mo-1.0.tar.gz",
    ],
)
def test_bad_distribution_file_names(filename: str) -> None:
    with pytest.raises(InvalidDistribution) as caught:
        parse_dist_filename(filename)
    assert caught.value.code == "invalid_distribution"
