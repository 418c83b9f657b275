"""Per-ecosystem version ordering: tricky-case tables and the ordering laws (hypothesis)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.scanner.domain.versions import (
    MAX_VERSION_LENGTH,
    PARSERS,
    InvalidVersion,
    UnsupportedEcosystem,
    VersionError,
    base_ecosystem,
    compare_versions,
    composer_normalize,
    parse_version,
    parser_for,
)
from tests.unit.version_cases import ASCENDING, EQUAL

CHAIN_CASES = [
    (eco, a, b)
    for eco, chains in ASCENDING.items()
    for chain in chains
    for a, b in itertools.pairwise(chain)
]


@pytest.mark.parametrize(("ecosystem", "lower", "higher"), CHAIN_CASES)
def test_ascending_neighbours_are_strictly_ordered(ecosystem: str, lower: str, higher: str) -> None:
    assert parse_version(ecosystem, lower) < parse_version(ecosystem, higher)
    assert compare_versions(ecosystem, lower, higher) == -1
    assert compare_versions(ecosystem, higher, lower) == 1


@pytest.mark.parametrize(
    ("ecosystem", "a", "b"), [(eco, a, b) for eco, pairs in EQUAL.items() for a, b in pairs]
)
def test_equal_spellings_have_equal_keys(ecosystem: str, a: str, b: str) -> None:
    assert parse_version(ecosystem, a) == parse_version(ecosystem, b)
    assert hash(parse_version(ecosystem, a)) == hash(parse_version(ecosystem, b))
    assert compare_versions(ecosystem, a, b) == 0


@pytest.mark.parametrize(
    ("ecosystem", "version"),
    [
        ("PyPI", ""),
        ("PyPI", "   "),
        ("npm", "1.2"),
        ("npm", "latest"),
        ("npm", "git+https://example.invalid/x.git"),
        ("crates.io", "1.0"),
        ("Go", "master"),
        ("Go", "v1.2.3.4"),
        ("NuGet", "1.2.3.4.5"),
        ("NuGet", "abc"),
        ("RubyGems", "1..2"),
        ("RubyGems", "v1.0"),
        ("Packagist", "dev-master"),
        ("Packagist", "master"),
        ("Maven", "1" * (MAX_VERSION_LENGTH + 1)),
    ],
)
def test_unparseable_versions_are_typed_errors(ecosystem: str, version: str) -> None:
    with pytest.raises(InvalidVersion) as caught:
        parse_version(ecosystem, version)
    assert caught.value.ecosystem == ecosystem
    assert caught.value.code == "version_invalid"


def test_unknown_ecosystem_is_a_typed_error_and_suffixes_use_the_base() -> None:
    with pytest.raises(UnsupportedEcosystem):
        parser_for("Debian:11")
    assert isinstance(UnsupportedEcosystem("x"), VersionError)
    assert parser_for("Maven:https://maven.google.com") is PARSERS["Maven"]
    assert base_ecosystem("Ubuntu:22.04:LTS") == "Ubuntu"


def test_pypi_legacy_versions_sort_before_every_pep440_version() -> None:
    legacy = ["trunk", "0.3m1", "2013-01-21T20:33:09+0100", "0.7.4.svn.r2010"]
    for old in legacy:
        assert parse_version("PyPI", old) < parse_version("PyPI", "0.0.0.dev0")


def test_maven_cycles_are_broken_as_documented() -> None:
    # Maven itself says 1-snapshot < 1 < 1.sp < 1-snapshot (a cycle); our total order keeps the
    # first two and breaks the third, and likewise for "1.0.alpha" (below the release here).
    key = PARSERS["Maven"]
    assert key("1-snapshot") < key("1") < key("1.sp")
    assert key("1-alpha") < key("1.sp")
    assert key("1.0.alpha") < key("1") < key("1.sp")


def test_go_pseudo_versions_order_by_time_and_below_the_next_release() -> None:
    key = PARSERS["Go"]
    older = "v0.0.0-20191109021931-daa7c04131f5"
    newer = "v0.0.0-20220101000000-0123456789ab"
    assert key(older) < key(newer) < key("v0.0.1")
    assert key("v1.5.1-0.20220101000000-0123456789ab") < key("v1.5.1")
    assert key("v1.5.0") < key("v1.5.1-0.20220101000000-0123456789ab")


def test_composer_normalisation() -> None:
    assert composer_normalize("v1.2") == "1.2.0.0"
    assert composer_normalize("1.0.0-b2") == "1.0.0.0-beta2"
    assert composer_normalize("1.0.0-pl3") == "1.0.0.0-patch3"
    assert composer_normalize("2.1.x-dev") == "2.1.9999999.9999999-dev"
    assert composer_normalize("1.0.0+meta") == "1.0.0.0"
    assert composer_normalize("not a version") is None


# ---- ordering laws -----------------------------------------------------------------------

_num = st.integers(min_value=0, max_value=30).map(str)
_ident = st.one_of(_num, st.sampled_from(["alpha", "beta", "rc", "pre", "a", "x-y", "B2"]))
_pre = st.lists(_ident, min_size=1, max_size=3).map(".".join)
_semver = st.builds(
    lambda a, b, c, pre, build: f"{a}.{b}.{c}" + (f"-{pre}" if pre else "") + build,
    _num,
    _num,
    _num,
    st.one_of(st.none(), _pre),
    st.sampled_from(["", "+b1", "+incompatible"]),
)
_go = st.one_of(
    _semver.map(lambda v: "v" + v),
    st.builds(
        lambda minor, patch, pre: f"go1.{minor}{'.' + patch if patch != '0' else ''}{pre}",
        _num,
        _num,
        st.sampled_from(["", "rc1", "rc2", "beta1"]),
    ),
)
_nuget = st.builds(
    lambda nums, pre: ".".join(nums) + (f"-{pre}" if pre else ""),
    st.lists(_num, min_size=1, max_size=4),
    st.one_of(st.none(), _pre),
)
_pep440 = st.builds(
    lambda rel, pre, post, dev, local: ".".join(rel) + pre + post + dev + local,
    st.lists(_num, min_size=1, max_size=4),
    st.sampled_from(["", "a1", "b2", "rc1", "c3", ".alpha0"]),
    st.sampled_from(["", ".post1", "-2", ".rev3"]),
    st.sampled_from(["", ".dev0", ".dev4"]),
    st.sampled_from(["", "+local", "+ubuntu.1", "+1.a"]),
)
_free = st.text(alphabet="0123456789.-_+abcdefgilmnoprstvxABCMRSP", min_size=1, max_size=16)
_gem = st.builds(
    lambda head, rest: head + rest,
    _num,
    st.lists(
        st.one_of(_num, st.sampled_from(["a", "b", "pre", "rc1", "RC", "beta2"])), max_size=4
    ).map(lambda xs: "".join("." + x for x in xs)),
)

STRATEGIES = {
    "PyPI": st.one_of(_pep440, _free),
    "npm": _semver,
    "crates.io": _semver,
    "Go": _go,
    "NuGet": _nuget,
    "Maven": _free,
    "RubyGems": st.one_of(_gem, _free),
    "Packagist": _free,
}


def _keys(ecosystem: str, versions: list[str]) -> list[Any]:
    parse = PARSERS[ecosystem]
    keys: list[Any] = []
    for version in versions:
        try:
            keys.append(parse(version))
        except InvalidVersion:
            continue
    return keys


@pytest.mark.parametrize("ecosystem", sorted(STRATEGIES))
def test_ordering_laws(ecosystem: str) -> None:
    @settings(max_examples=150, deadline=None)
    @given(st.lists(STRATEGIES[ecosystem], min_size=3, max_size=3))
    def laws(versions: list[str]) -> None:
        keys = _keys(ecosystem, versions)
        for a in keys:
            # parse -> key is stable; a key equals itself
            assert a == a and not a < a
        for a, b in itertools.permutations(keys, 2):
            lt, eq, gt = a < b, a == b, a > b
            assert lt + eq + gt == 1  # totality: exactly one holds
            assert (a < b) == (b > a)  # antisymmetry
            if eq:
                assert hash(a) == hash(b)
        for a, b, c in itertools.permutations(keys, 3):
            if a <= b and b <= c:
                assert a <= c  # transitivity

    laws()


@pytest.mark.parametrize("ecosystem", sorted(STRATEGIES))
def test_parsing_is_deterministic(ecosystem: str) -> None:
    @settings(max_examples=100, deadline=None)
    @given(STRATEGIES[ecosystem])
    def same_key_twice(version: str) -> None:
        parse = PARSERS[ecosystem]
        try:
            first = parse(version)
        except InvalidVersion:
            with pytest.raises(InvalidVersion):
                parse(version)
            return
        assert parse(version) == first
        assert parse(" " + version + " ") == first

    same_key_twice()
