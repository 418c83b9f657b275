"""OSV decoding, range validation, the spec's evaluation algorithm, the index and severity."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from services.scanner.domain.advisory_index import AdvisoryIndex, canonical_group_id
from services.scanner.domain.model import Component
from services.scanner.domain.osv import (
    Advisory,
    Affected,
    BrokenRanges,
    OsvDecodeError,
    Severity,
    check_advisory,
    decode_advisory,
    range_problems,
)
from services.scanner.domain.osv_match import affected_verdict
from services.scanner.domain.package_ids import component_package, purl_package
from services.scanner.domain.severity import advisory_severity, band, rate


def advisory(
    events: list[dict[str, str]] | None = None,
    *,
    id: str = "TEST-1",
    ecosystem: str = "PyPI",
    name: str = "demo",
    range_type: str = "ECOSYSTEM",
    versions: list[str] | None = None,
    modified: str = "2024-01-01T00:00:00Z",
    **top: Any,
) -> Advisory:
    affected: dict[str, Any] = {"package": {"ecosystem": ecosystem, "name": name}}
    if events is not None:
        affected["ranges"] = [{"type": range_type, "events": events}]
        if range_type == "GIT":
            affected["ranges"][0]["repo"] = "https://example.invalid/repo"
    if versions is not None:
        affected["versions"] = versions
    doc = {"id": id, "modified": modified, "affected": [affected], **top}
    return decode_advisory(msgspec.json.encode(doc))


def verdict(adv: Advisory, version: str | None, ecosystem: str | None = None) -> str:
    affected = adv.affected[0]
    assert affected.package is not None
    return affected_verdict(affected, ecosystem or affected.package.ecosystem, version).status


# ---- decoding and validation --------------------------------------------------------------


def test_decode_tolerates_unknown_fields_and_keeps_known_ones() -> None:
    adv = advisory(
        [{"introduced": "0"}, {"fixed": "1.0"}],
        aliases=["CVE-2024-1"],
        future_field={"x": 1},
        withdrawn="2024-02-01T00:00:00Z",
    )
    assert adv.aliases == ("CVE-2024-1",)
    assert adv.withdrawn == datetime(2024, 2, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        (b'{"id": "X"}', "$"),
        (b'{"id": "X", "modified": "yesterday"}', "$.modified"),
        (
            b'{"id": "X", "modified": "2024-01-01T00:00:00Z", '
            b'"affected": [{"ranges": [{"type": "SEMVER", "events": [{"fixed": 1}]}]}]}',
            "$.affected[0].ranges[0].events[0].fixed",
        ),
        (b'{"id": "X", "modified": "2024-01-01T00:00:00Z", "aliases": "CVE-1"}', "$.aliases"),
        (b'{"id": "X", "modified": ', "$"),
        (b'{"id": " ", "modified": "2024-01-01T00:00:00Z"}', "$.id"),
    ],
)
def test_decode_errors_name_the_json_path(doc: bytes, path: str) -> None:
    with pytest.raises(OsvDecodeError) as caught:
        decode_advisory(doc)
    assert caught.value.location == path
    assert caught.value.code == "osv_malformed"


@pytest.mark.parametrize(
    ("events", "range_type", "path", "fragment"),
    [
        ([{"introduced": "0", "fixed": "1.0"}], "ECOSYSTEM", "events[0]", "exactly one kind"),
        ([{}], "ECOSYSTEM", "events[0]", "no kind"),
        ([{"fixed": "1.0"}], "ECOSYSTEM", "events", "no introduced"),
        (
            [{"introduced": "0"}, {"fixed": "2"}, {"last_affected": "1"}],
            "ECOSYSTEM",
            "events",
            "both fixed and last_affected",
        ),
        (
            [{"introduced": "0"}, {"fixed": "not a version!"}],
            "SEMVER",
            "events[1].fixed",
            "SEMVER version",
        ),
        ([{"introduced": "0"}], "WEIRD", "type", "unknown range type"),
        ([], "ECOSYSTEM", "events", "no events"),
    ],
)
def test_broken_ranges_are_reported_with_their_path(
    events: list[dict[str, str]], range_type: str, path: str, fragment: str
) -> None:
    adv = advisory(events, range_type=range_type)
    problems = range_problems(adv)
    assert any(
        p.path == f"$.affected[0].ranges[0].{path}" and fragment in p.message for p in problems
    ), problems
    with pytest.raises(BrokenRanges) as caught:
        check_advisory(adv)
    assert caught.value.location is not None and caught.value.extra["problems"]


def test_git_range_needs_a_repo_and_unknown_ecosystems_are_not_problems() -> None:
    doc = {
        "id": "X",
        "modified": "2024-01-01T00:00:00Z",
        "affected": [
            {
                "package": {"ecosystem": "Debian:11", "name": "openssl"},
                "ranges": [{"type": "GIT", "events": [{"introduced": "abc"}]}],
            }
        ],
    }
    problems = range_problems(decode_advisory(msgspec.json.encode(doc)))
    assert [p.path for p in problems] == ["$.affected[0].ranges[0].repo"]
    assert check_advisory(advisory([{"introduced": "0"}], ecosystem="Debian:11")).id == "TEST-1"


# ---- the spec's evaluation algorithm ------------------------------------------------------


@pytest.mark.parametrize(
    ("events", "cases"),
    [
        # Unfixed: every version.
        ([{"introduced": "0"}], {"0.0.1": "affected", "99.0": "affected"}),
        # Fixed: everything before 1.0.2.
        (
            [{"introduced": "0"}, {"fixed": "1.0.2"}],
            {"1.0.1": "affected", "1.0.2": "not_affected", "1.0.2rc1": "affected"},
        ),
        # Multiple ranges in one events array: [1.0.0, 1.0.2) and [3.0.0, 3.2.5).
        (
            [
                {"introduced": "1.0.0"},
                {"fixed": "1.0.2"},
                {"introduced": "3.0.0"},
                {"fixed": "3.2.5"},
            ],
            {
                "0.9": "not_affected",
                "1.0.0": "affected",
                "1.0.2": "not_affected",
                "2.0": "not_affected",
                "3.1": "affected",
                "3.2.5": "not_affected",
            },
        ),
        # Events out of order are sorted first.
        (
            [
                {"fixed": "3.2.5"},
                {"introduced": "3.0.0"},
                {"fixed": "1.0.2"},
                {"introduced": "1.0.0"},
            ],
            {"1.0.1": "affected", "2.0": "not_affected", "3.0.0": "affected"},
        ),
        # last_affected is inclusive.
        (
            [{"introduced": "0"}, {"last_affected": "2.1.214"}],
            {"2.1.214": "affected", "2.1.215": "not_affected", "2.1.214.post1": "not_affected"},
        ),
        # limit bounds the range from above (exclusive); several limits: below any of them.
        (
            [{"introduced": "1.0"}, {"limit": "2.0"}],
            {"0.9": "not_affected", "1.5": "affected", "2.0": "not_affected"},
        ),
        (
            [{"introduced": "1.0"}, {"limit": "2.0"}, {"limit": "3.0"}],
            {"2.5": "affected", "3.0": "not_affected"},
        ),
        ([{"introduced": "1.0"}, {"limit": "*"}], {"99": "affected"}),
        # Same version: array order decides (stable sort); fixed then introduced joins ranges.
        (
            [{"introduced": "0"}, {"fixed": "3.1.1"}, {"introduced": "3.1.1"}, {"fixed": "3.2"}],
            {"3.1.1": "affected", "3.1.5": "affected", "3.2": "not_affected"},
        ),
        ([{"introduced": "1.0"}, {"fixed": "1.0"}], {"1.0": "not_affected", "2": "not_affected"}),
    ],
)
def test_spec_evaluation_cases(events: list[dict[str, str]], cases: dict[str, str]) -> None:
    adv = advisory(events)
    assert {v: verdict(adv, v) for v in cases} == cases


def test_enumerated_versions_match_even_outside_ranges() -> None:
    adv = advisory([{"introduced": "0"}, {"fixed": "1.0"}], versions=["2.0", "legacy-build"])
    assert verdict(adv, "2.0") == "affected"
    assert verdict(adv, "2.0.0") == "affected"  # PEP 440 equal to a listed version
    assert verdict(adv, "legacy-build") == "affected"
    assert verdict(adv, "3.0") == "not_affected"


def test_git_ranges_are_not_evaluated_unless_versions_stand_in() -> None:
    git_only = advisory([{"introduced": "0"}, {"fixed": "a" * 40}], range_type="GIT")
    result = affected_verdict(git_only.affected[0], "PyPI", "1.0")
    assert result.status == "not_evaluated" and "GIT" in (result.reason or "")
    listed = advisory(
        [{"introduced": "0"}, {"fixed": "a" * 40}], range_type="GIT", versions=["1.0"]
    )
    assert verdict(listed, "1.0") == "affected"
    assert verdict(listed, "1.1") == "not_affected"


def test_unknown_ecosystems_and_unparseable_versions_are_not_evaluated() -> None:
    debian = advisory([{"introduced": "0"}, {"fixed": "1.1-1"}], ecosystem="Debian:11")
    result = affected_verdict(debian.affected[0], "Debian:11", "1.0-1")
    assert result.status == "not_evaluated" and "Debian:11" in (result.reason or "")
    npm = advisory([{"introduced": "0"}, {"fixed": "1.0.0"}], ecosystem="npm", range_type="SEMVER")
    result = affected_verdict(npm.affected[0], "npm", "file:../local")
    assert result.status == "not_evaluated" and "npm version" in (result.reason or "")
    assert verdict(npm, None) == "not_evaluated"
    broken = advisory(
        [{"introduced": "0"}, {"fixed": "not-semver"}], ecosystem="npm", range_type="SEMVER"
    )
    assert verdict(broken, "0.1.0") == "not_evaluated"


def test_ecosystem_suffixes_and_go_spellings() -> None:
    maven = advisory(
        [{"introduced": "0"}, {"fixed": "2.0"}], ecosystem="Maven:https://x", name="g:a"
    )
    assert verdict(maven, "1.9-SNAPSHOT") == "affected"
    go = advisory(
        [{"introduced": "0"}, {"fixed": "1.2.3"}],
        ecosystem="Go",
        name="example.com/m",
        range_type="SEMVER",
    )
    assert verdict(go, "v1.2.2") == "affected"
    assert verdict(go, "v1.2.3") == "not_affected"
    assert verdict(go, "v1.2.3-0.20200101000000-abcdef123456") == "affected"
    stdlib = advisory(
        [{"introduced": "1.21.0-0"}, {"fixed": "1.21.5"}],
        ecosystem="Go",
        name="stdlib",
        range_type="SEMVER",
    )
    assert {v: verdict(stdlib, v) for v in ("go1.20.12", "go1.21rc2", "go1.21.4", "go1.21.5")} == {
        "go1.20.12": "not_affected",
        "go1.21rc2": "affected",
        "go1.21.4": "affected",
        "go1.21.5": "not_affected",
    }


# ---- package identity ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("purl", "expected"),
    [
        ("pkg:pypi/Django_Rest.Framework@3.0", (("PyPI", "django-rest-framework"), "3.0")),
        ("pkg:npm/%40angular/core@1.0.0", (("npm", "@angular/core"), "1.0.0")),
        ("pkg:maven/org.apache/commons-text@1.9", (("Maven", "org.apache:commons-text"), "1.9")),
        ("pkg:golang/github.com/a/b@v1.2.3", (("Go", "github.com/a/b"), "v1.2.3")),
        (
            "pkg:composer/Symfony/HTTP-Kernel@v5.4.0",
            (("Packagist", "symfony/http-kernel"), "v5.4.0"),
        ),
        ("pkg:nuget/Newtonsoft.Json@13.0.1", (("NuGet", "newtonsoft.json"), "13.0.1")),
        ("pkg:deb/debian/openssl@1.1", None),
        ("not a purl", None),
    ],
)
def test_purl_package_ids(purl: str, expected: object) -> None:
    assert purl_package(purl) == expected


def test_component_package_without_purl_uses_group_and_ecosystem() -> None:
    maven = Component(
        ref="r", name="commons-text", group="org.apache", ecosystem="Maven", version="1.9"
    )
    assert component_package(maven) == (("Maven", "org.apache:commons-text"), "1.9")
    scoped = Component(ref="r", name="core", group="@angular", ecosystem="npm", version="1")
    assert component_package(scoped) == (("npm", "@angular/core"), "1")
    assert component_package(Component(ref="r", name="x")) is None


# ---- the index ----------------------------------------------------------------------------


def _pypi(name: str, version: str, ref: str | None = None) -> Component:
    return Component(
        ref=ref or f"{name}@{version}",
        name=name,
        version=version,
        purl=f"pkg:pypi/{name}@{version}",
    )


def test_index_matches_by_normalised_name_and_merges_aliases() -> None:
    index = AdvisoryIndex()
    events = [{"introduced": "0"}, {"fixed": "2.0"}]
    index.upsert(advisory(events, id="PYSEC-2024-1", name="My_Pkg", aliases=["CVE-2024-5"]))
    index.upsert(
        advisory(
            events, id="GHSA-aaaa-bbbb-cccc", name="my-pkg", aliases=["CVE-2024-5", "PYSEC-2024-1"]
        )
    )
    index.upsert(advisory([{"introduced": "0"}], id="GHSA-zzzz-1111-2222", name="my.pkg"))
    matches = index.match([_pypi("MY.PKG", "1.5"), _pypi("other", "1.0")])
    assert [(m.component_ref, m.group_id, m.advisory_ids, m.verdict.status) for m in matches] == [
        ("MY.PKG@1.5", "CVE-2024-5", ("GHSA-aaaa-bbbb-cccc", "PYSEC-2024-1"), "affected"),
        ("MY.PKG@1.5", "GHSA-zzzz-1111-2222", ("GHSA-zzzz-1111-2222",), "affected"),
    ]
    assert index.group_members("PYSEC-2024-1") == (
        "CVE-2024-5",
        "GHSA-aaaa-bbbb-cccc",
        "PYSEC-2024-1",
    )
    assert index.match([_pypi("my-pkg", "2.0")])[0].group_id == "GHSA-zzzz-1111-2222"


def test_canonical_group_id_is_order_independent() -> None:
    assert canonical_group_id(["GHSA-x", "CVE-2021-10000", "CVE-2021-999", "PYSEC-1"]) == (
        "CVE-2021-999"
    )
    assert canonical_group_id(["PYSEC-2021-1", "GHSA-abc", "GO-2021-1"]) == "GHSA-abc"


def test_index_upsert_is_incremental_by_modified_and_withdrawn_stops_matching() -> None:
    index = AdvisoryIndex()
    v1 = advisory([{"introduced": "0"}, {"fixed": "1.0"}], modified="2024-01-01T00:00:00Z")
    v2 = advisory([{"introduced": "0"}, {"fixed": "3.0"}], modified="2024-02-01T00:00:00Z")
    gone = advisory(
        [{"introduced": "0"}], modified="2024-03-01T00:00:00Z", withdrawn="2024-03-01T00:00:00Z"
    )
    assert index.upsert(v1) == "inserted"
    assert index.match([_pypi("demo", "2.0")]) == []
    assert index.upsert(v2) == "updated"
    assert index.upsert(v1) == "stale"
    assert index.upsert(v2) == "unchanged"
    assert [m.verdict.status for m in index.match([_pypi("demo", "2.0")])] == ["affected"]
    assert index.upsert(gone) == "withdrawn"
    assert index.match([_pypi("demo", "2.0")]) == []
    assert index.upsert(v2) == "stale"  # the tombstone keeps the newer modified
    assert len(index) == 0


def test_withdrawn_or_shrunk_aliases_split_groups_again() -> None:
    index = AdvisoryIndex()
    events = [{"introduced": "0"}]
    index.upsert(advisory(events, id="A-1", aliases=["CVE-2020-1"]))
    index.upsert(advisory(events, id="B-1", aliases=["CVE-2020-1"]))
    assert index.group_of("A-1") == index.group_of("B-1") == "CVE-2020-1"
    index.upsert(advisory(events, id="B-1", aliases=[], modified="2024-05-01T00:00:00Z"))
    assert index.group_of("B-1") == "B-1"
    index.upsert(
        advisory(
            events, id="A-1", modified="2024-05-01T00:00:00Z", withdrawn="2024-05-01T00:00:00Z"
        )
    )
    assert index.group_of("CVE-2020-1") == "CVE-2020-1"
    assert index.counts_by_ecosystem() == {"PyPI": 1}


def test_index_reports_not_evaluated_instead_of_missing() -> None:
    index = AdvisoryIndex()
    index.upsert(advisory([{"introduced": "0"}, {"fixed": "b" * 40}], range_type="GIT", id="OSV-1"))
    [match] = index.match([_pypi("demo", "1.0")])
    assert match.verdict.status == "not_evaluated" and "GIT" in (match.verdict.reason or "")
    [no_version] = index.match([Component(ref="x", name="demo", ecosystem="PyPI")])
    assert no_version.verdict.reason == "the component has no version"


# ---- severity -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "level"),
    [
        (10.0, "CRITICAL"),
        (9.0, "CRITICAL"),
        (8.9, "HIGH"),
        (7.0, "HIGH"),
        (6.9, "MEDIUM"),
        (4.0, "MEDIUM"),
        (3.9, "LOW"),
        (0.1, "LOW"),
        (0.0, "NONE"),
    ],
)
def test_cvss_bands(score: float, level: str) -> None:
    assert band(score) == level


def test_severity_prefers_cvss_then_database_word_then_unknown() -> None:
    v3 = Severity("CVSS_V3", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")
    v4 = Severity("CVSS_V4", "CVSS:4.0/AV:N/AC:L/AT:N/PR:H/UI:N/VC:L/VI:L/VA:N/SC:N/SI:N/SA:N")
    v2 = Severity("CVSS_V2", "AV:N/AC:L/Au:N/C:P/I:P/A:P")
    broken = Severity("CVSS_V3", "CVSS:3.1/AV:X")
    assert rate([v4, v3]).source == "CVSS_V3"  # v3 first, whatever the order given
    assert rate([v3]).score == 9.8 and rate([v3]).source == "CVSS_V3"
    assert (rate([v4]).level, rate([v4]).score) == ("MEDIUM", 5.1)
    assert rate([broken], {"severity": "MODERATE"}).level == "MEDIUM"
    assert rate([], {"severity": "high"}).source == "database_specific"
    assert (rate([v2]).level, rate([v2]).score) == ("HIGH", 7.5)
    assert rate([], {"severity": "weird"}).level == "UNKNOWN"
    assert rate([broken]).level == "UNKNOWN"
    adv = advisory([{"introduced": "0"}], database_specific={"severity": "LOW"})
    assert advisory_severity(adv).level == "LOW"


def test_affected_entries_without_package_are_skipped_by_the_index() -> None:
    doc = {
        "id": "X",
        "modified": "2024-01-01T00:00:00Z",
        "affected": [{"ranges": [{"type": "GIT", "repo": "r", "events": [{"introduced": "a"}]}]}],
    }
    index = AdvisoryIndex()
    assert index.upsert(decode_advisory(msgspec.json.encode(doc))) == "inserted"
    assert index.counts_by_ecosystem() == {}
    assert Affected().ranges == ()
