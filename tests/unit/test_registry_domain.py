"""The artifact registry's pure rules: PEP 503 names, formats and paths, quotas, ``vers:``
ranges (held against ``univers`` on the cases both evaluate), and which block matches an
artifact (by digest, purl with a version or a range, name glob; format; expiry)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st
from univers.version_range import VersionRange

from services.scanner.domain.vers import InvalidVers, parse_vers
from services.scanner.registry.domain import (
    ArtifactFacts,
    BlockRule,
    artifact_id_of_quarantine,
    block_matches,
    check_artifact_path,
    check_block_definition,
    check_versions,
    format_accepts,
    matching_block,
    name_matches,
    normalize_name,
    pypi_purl,
    quarantine_block_id,
    quota_refusal,
)

NOW = dt.datetime(2030, 6, 1, tzinfo=dt.UTC)
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


def wheel(
    name: str = "Evil_Pkg", version: str = "1.0.0", *, purl: str | None = None, digest: str = ""
) -> ArtifactFacts:
    return ArtifactFacts(
        format="pypi",
        digest=digest or DIGEST_A,
        path=f"{name}-{version}-py3-none-any.whl",
        name=name,
        version=version,
        purl=purl,
    )


# ---- names, formats, paths ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "normalized"),
    [
        ("Django", "django"),
        ("zope.interface", "zope-interface"),
        ("Foo__Bar-._baz", "foo-bar-baz"),
        ("  requests ", "requests"),
        ("A.B_C-D", "a-b-c-d"),
    ],
)
def test_names_are_pep503_normalized(name: str, normalized: str) -> None:
    assert normalize_name(name) == normalized


def test_pypi_purls_are_normalized_and_escaped() -> None:
    assert pypi_purl("Demo_Pkg", "1.0") == "pkg:pypi/demo-pkg@1.0"
    assert pypi_purl("zope.interface", None) == "pkg:pypi/zope-interface"
    local = pypi_purl("demo", "1.0+local.7")
    assert local == "pkg:pypi/demo@1.0%2Blocal.7"
    block = BlockRule(id="b", purl="pkg:pypi/demo@1.0+local.7")
    assert block_matches(block, wheel("demo", "1.0+local.7", purl=local))


def test_formats_take_their_kinds_only() -> None:
    assert format_accepts("pypi", "wheel") and format_accepts("pypi", "sdist")
    assert not format_accepts("pypi", "file")
    assert format_accepts("generic", "file") and not format_accepts("generic", "wheel")
    assert not format_accepts("npm", "file")


@pytest.mark.parametrize(
    "path", ["../x", "a/../b", "/etc/passwd", "a//b", "a/./b", "a\x00b", "a\\b", "a/", ""]
)
def test_paths_that_leave_or_confuse_the_repository_are_refused(path: str) -> None:
    assert [p.field for p in check_artifact_path(path)] == ["$.path"]


@pytest.mark.parametrize("path", ["demo-1.0-py3-none-any.whl", "tools/linux/amd64/t.tar.gz", "..a"])
def test_ordinary_paths_pass(path: str) -> None:
    assert check_artifact_path(path) == []


# ---- quotas ---------------------------------------------------------------------------------
def test_quota_arithmetic() -> None:
    def refuse(**kw: int | None) -> tuple[str, int, int, int, int] | None:
        args: dict[str, int | None] = {
            "quota_bytes": None,
            "quota_artifacts": None,
            "used_bytes": 0,
            "artifact_count": 0,
            "size": 0,
        }
        args.update(kw)
        found = quota_refusal(**args)  # type: ignore[arg-type]
        if found is None:
            return None
        return found.kind, found.limit, found.used, found.attempted, found.status

    assert refuse(size=10**12) is None  # unlimited
    assert refuse(quota_bytes=100, used_bytes=60, size=40) is None  # exactly full is fine
    assert refuse(quota_bytes=100, used_bytes=60, size=41) == ("bytes", 100, 60, 41, 413)
    assert refuse(quota_bytes=0, size=0) is None
    assert refuse(quota_bytes=0, size=1) == ("bytes", 0, 0, 1, 413)
    assert refuse(quota_artifacts=3, artifact_count=2) is None
    assert refuse(quota_artifacts=3, artifact_count=3) == ("artifacts", 3, 3, 1, 507)
    # Bytes are named first when both would be exceeded.
    assert refuse(quota_bytes=1, quota_artifacts=0, size=2) == ("bytes", 1, 0, 2, 413)
    big = 2**63 - 1
    assert refuse(quota_bytes=big, used_bytes=big - 1, size=1) is None


# ---- vers ranges ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "inside", "outside"),
    [
        ("vers:pypi/*", ["0.1", "99"], []),
        ("vers:pypi/1.0.0", ["1.0", "1.0.0", "1"], ["1.0.1", "0.9"]),
        ("vers:pypi/>=1.0|<2.0", ["1.0", "1.5", "1.9.9", "2.0rc1"], ["0.9", "2.0", "2.1"]),
        ("vers:pypi/>1.0|<=2.0", ["1.0.1", "2.0"], ["1.0", "2.0.1"]),
        ("vers:pypi/<1.0|>=2.0", ["0.5", "2.0", "3"], ["1.0", "1.5"]),
        ("vers:pypi/>=1.0|<2.0|>=3.0", ["1.2", "3.0", "4"], ["0.1", "2.5"]),
        ("vers:pypi/>=1.0|!=1.5|<2.0", ["1.4", "1.6"], ["1.5", "2.0"]),
        ("vers:pypi/!=1.5", ["1.4", "9"], ["1.5", "1.5.0"]),
        ("vers:pypi/1.0|2.0", ["1.0", "2.0"], ["1.5"]),
        ("vers:pypi/< 1.0", ["0.9"], ["1.0"]),
        ("vers:npm/>=1.2.3|<2.0.0", ["1.2.3", "2.0.0-rc.1"], ["1.2.2", "2.0.0", "1.2.3-rc.1"]),
        ("vers:semver/>=1.0.0", ["1.0.0", "3.1.4"], ["0.9.9"]),
    ],
)
def test_vers_containment(text: str, inside: list[str], outside: list[str]) -> None:
    found = parse_vers(text)
    for version in inside:
        assert found.contains(version), (text, version)
    for version in outside:
        assert not found.contains(version), (text, version)


@pytest.mark.parametrize(
    "text",
    [
        "pypi/>=1.0",
        "vers:",
        "vers:pypi",
        "vers:pypi/",
        "vers:nosuch/>=1.0",
        "vers:pypi/>=",
        "vers:pypi/*|>=1.0",
        "vers:npm/>=not-a-version",
        "vers:pypi/>=bogus!",
    ],
)
def test_vers_it_cannot_evaluate_is_refused(text: str) -> None:
    with pytest.raises(InvalidVers):
        parse_vers(text)


_VERSIONS = ["0.9", "1.0", "1.0.1", "1.4", "1.5", "2.0", "2.0.1", "3.0", "3.1", "4.0"]


@given(
    bounds=st.lists(st.sampled_from(_VERSIONS), min_size=2, max_size=2, unique=True),
    low=st.sampled_from([">", ">="]),
    high=st.sampled_from(["<", "<="]),
    version=st.sampled_from(_VERSIONS),
)
def test_vers_intervals_agree_with_univers(
    bounds: list[str], low: str, high: str, version: str
) -> None:
    first, second = sorted(bounds, key=lambda v: tuple(int(p) for p in v.split(".")))
    text = f"vers:pypi/{low}{first}|{high}{second}"
    theirs = VersionRange.from_string(text)  # type: ignore[no-untyped-call]
    assert parse_vers(text).contains(version) == (theirs.version_class(version) in theirs)


# ---- blocks ---------------------------------------------------------------------------------
def test_a_digest_block_matches_those_bytes_only() -> None:
    block = BlockRule(id="b", digest=DIGEST_A)
    assert block_matches(block, wheel(digest=DIGEST_A))
    assert not block_matches(block, wheel(digest=DIGEST_B))


def test_a_purl_block_matches_the_package_by_normalized_name_and_version() -> None:
    exact = BlockRule(id="b", purl="pkg:pypi/evil-pkg@1.0.0")
    assert block_matches(exact, wheel("Evil_Pkg", "1.0.0"))
    assert block_matches(exact, wheel("evil.pkg", "1.0"))  # PEP 440: 1.0 == 1.0.0
    assert not block_matches(exact, wheel("Evil_Pkg", "1.0.1"))
    assert not block_matches(exact, wheel("evil-pkgs", "1.0.0"))
    every = BlockRule(id="b", purl="pkg:pypi/Evil_Pkg")
    assert block_matches(every, wheel("evil-pkg", "7.3"))
    # The artifact's own purl decides when it has one.
    assert block_matches(every, wheel("other", "1", purl="pkg:pypi/evil-pkg@1"))


def test_a_purl_block_with_a_vers_range() -> None:
    ranged = BlockRule(id="b", purl="pkg:pypi/evil-pkg", versions="vers:pypi/>=1.0|<2.0")
    assert block_matches(ranged, wheel(version="1.0"))
    assert block_matches(ranged, wheel(version="1.9.post1"))
    assert not block_matches(ranged, wheel(version="2.0"))
    assert not block_matches(ranged, wheel(version="0.9"))
    unreadable = ArtifactFacts(format="pypi", digest=DIGEST_A, path="x", name="evil-pkg")
    assert not block_matches(ranged, unreadable)  # no version: no range can name it


def test_a_name_pattern_globs_the_normalized_name() -> None:
    assert name_matches("evil-*", "evil-pkg")
    assert name_matches("Evil_*", "evil-pkg")  # the pattern is normalized too
    assert name_matches("*-pkg", "evil-pkg")
    assert name_matches("ev?l-pkg", "evil-pkg")
    assert not name_matches("evil-*", "not-evil-pkg")
    block = BlockRule(id="b", name_pattern="evil*")
    assert block_matches(block, wheel("Evil.Things"))
    generic = ArtifactFacts(format="generic", digest=DIGEST_A, path="tools/Evil_Tool.tar.gz")
    assert block_matches(block, generic)  # a generic file without a name: its file name


def test_a_block_limited_to_a_format() -> None:
    block = BlockRule(id="b", digest=DIGEST_A, format="generic")
    assert not block_matches(block, wheel(digest=DIGEST_A))
    generic = ArtifactFacts(format="generic", digest=DIGEST_A, path="a.bin")
    assert block_matches(block, generic)


def test_expired_blocks_match_nothing_and_the_oldest_active_one_is_named() -> None:
    facts = wheel()
    expired = BlockRule(id="old", digest=DIGEST_A, blocked_until=NOW, created_seq=1)
    later = BlockRule(id="later", purl="pkg:pypi/evil-pkg", created_seq=5)
    earlier = BlockRule(
        id="earlier", name_pattern="evil-*", created_seq=3, blocked_until=NOW.replace(year=2031)
    )
    assert matching_block([expired], facts, now=NOW) is None
    assert matching_block([expired], facts, now=NOW - dt.timedelta(seconds=1)) == expired
    found = matching_block([later, expired, earlier], facts, now=NOW)
    assert found is not None and found.id == "earlier"
    assert matching_block([], facts, now=NOW) is None


def test_a_block_definition_names_every_field_at_fault() -> None:
    def fields(**kw: str | None) -> list[str]:
        args: dict[str, str | None] = {
            "purl": None,
            "versions": None,
            "digest": None,
            "name_pattern": None,
        }
        args.update(kw)
        return [p.field for p in check_block_definition(**args)]  # type: ignore[arg-type]

    assert fields() == ["$.purl", "$.digest", "$.name_pattern"]
    assert fields(purl="pkg:pypi/x", digest=DIGEST_A) == ["$.purl", "$.digest"]
    assert fields(purl="pkg:pypi/x") == []
    assert fields(purl="not a purl") == ["$.purl"]
    assert fields(digest=DIGEST_A, versions="vers:pypi/>=1") == ["$.versions"]
    assert fields(name_pattern="evil/*") == ["$.name_pattern"]
    assert fields(name_pattern="evil-[a]") == ["$.name_pattern"]
    assert fields(purl="pkg:pypi/x", versions="vers:npm/>=1.0.0") == ["$.versions"]
    assert fields(purl="pkg:pypi/x@1.0", versions="vers:pypi/>=1.0") == ["$.versions"]
    assert fields(purl="pkg:pypi/x", versions="vers:pypi/>=1.0") == []
    assert check_versions("pkg:generic/tool", "vers:semver/>=1.0.0") == []


def test_a_quarantine_reads_as_a_block_id_that_leads_back() -> None:
    artifact_id = "art_" + "0123456789abcdef" * 2
    block_id = quarantine_block_id(artifact_id)
    assert block_id == "01234567-89ab-cdef-0123-456789abcdef"
    assert artifact_id_of_quarantine(block_id) == artifact_id
