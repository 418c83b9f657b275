"""The pure rules of scans: finding construction (alias groups, severity, EPSS, carried-forward
triage, discovered_at), the summary's effective and blocking counts, the snapshot diff, the
lifecycle, deterministic ids, the canonical SBOM of a source scan, reading uploads."""

from __future__ import annotations

import datetime as dt
import io
import zipfile

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.scanner.domain.advisory_index import Match
from services.scanner.domain.errors import IngestError
from services.scanner.domain.model import Component, Dependency, License
from services.scanner.domain.osv_match import AFFECTED, not_evaluated
from services.scanner.domain.sbom import parse_sbom
from services.scanner.domain.severity import Rating
from services.scanner.scans import ids
from services.scanner.scans.analysis import (
    EpssScore,
    PriorFinding,
    TriageMemo,
    build_findings,
    component_records,
    cyclonedx_for,
    group_rating,
    is_blocking,
    snapshot_diff,
    summarize,
)
from services.scanner.scans.ingest import NoLockfiles, read_upload, vet_upload
from services.scanner.scans.lifecycle import (
    ScanFinished,
    ScanLabelled,
    ScanNotTerminal,
    check_cancellable,
    check_deletable,
    next_status,
)
from services.scanner.scans.result import FindingRecord, ScanResult, decode_result, encode_result

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(days=3)


def _unknown(_: Component) -> tuple[str, str | None]:
    return "unknown", None


COMPONENTS = component_records(
    [
        Component(ref="a", name="django", version="2.2.0", purl="pkg:pypi/Django@2.2.0"),
        Component(ref="b", name="lodash", version="4.17.20", purl="pkg:npm/lodash@4.17.20"),
        Component(ref="c", name="local-thing", version="1.0"),  # no package id
    ],
    classify=_unknown,
)


def _members(advisory_id: str) -> tuple[str, ...]:
    groups = {
        "GHSA-1": ("CVE-2020-1", "GHSA-1", "PYSEC-1"),
        "PYSEC-1": ("CVE-2020-1", "GHSA-1", "PYSEC-1"),
        "GHSA-2": ("CVE-2021-2", "GHSA-2"),
        "GHSA-3": ("GHSA-3",),
    }
    return groups[advisory_id]


MATCHES = [
    Match("a", "CVE-2020-1", ("GHSA-1", "PYSEC-1"), AFFECTED),
    Match("b", "CVE-2021-2", ("GHSA-2",), AFFECTED),
    Match("b", "GHSA-3", ("GHSA-3",), not_evaluated("a GIT range")),
    Match("c", "CVE-2099-9", ("GHSA-9",), AFFECTED),  # a component without a package id
]
RATINGS = {
    "GHSA-1": Rating("HIGH", 7.5, "CVSS_V3"),
    "PYSEC-1": Rating("CRITICAL", 9.8, "CVSS_V3"),
    "GHSA-2": Rating("MEDIUM", source="database_specific"),
}
EPSS = {"CVE-2020-1": EpssScore(0.02, 0.5), "CVE-2021-2": EpssScore(0.4, 0.99)}


def _findings(
    *,
    triage: dict[tuple[str, str], TriageMemo] | None = None,
    prior: dict[tuple[str, str], PriorFinding] | None = None,
) -> list[FindingRecord]:
    return build_findings(
        scan_id="s1",
        components=COMPONENTS,
        matches=MATCHES,
        ratings=RATINGS,
        members=_members,
        epss=EPSS,
        triage=triage or {},
        prior=prior or {},
        now=T1,
    )


def test_findings_take_the_highest_rating_and_epss_of_their_group() -> None:
    django, lodash, git = _findings()
    assert (django.package, django.vulnerability_id) == ("PyPI:django", "CVE-2020-1")
    assert django.advisory_ids == ("GHSA-1", "PYSEC-1")
    assert django.aliases == ("GHSA-1", "PYSEC-1")
    assert (django.severity, django.cvss_score) == ("CRITICAL", 9.8)
    assert (django.epss, django.epss_percentile) == (0.02, 0.5)
    assert django.id == ids.finding_id("s1", "a", "CVE-2020-1")
    assert (lodash.severity, lodash.cvss_score, lodash.epss) == ("MEDIUM", None, 0.4)
    assert (git.match, git.match_reason, git.severity) == (
        "not_evaluated",
        "a GIT range",
        "UNKNOWN",
    )
    assert {f.discovered_at for f in (django, lodash, git)} == {T1}
    assert {f.state for f in (django, lodash, git)} == {"new"}


def test_group_rating_prefers_score_then_level() -> None:
    assert group_rating(["GHSA-1", "PYSEC-1"], RATINGS).score == 9.8
    assert group_rating(["nothing"], RATINGS).level == "UNKNOWN"
    none_level = {"x": Rating("NONE", 0.0), "y": Rating("LOW", 2.0)}
    assert group_rating(["x", "y"], none_level).level == "LOW"


def test_triage_and_discovery_carry_forward() -> None:
    triage = {
        ("PyPI:django", "CVE-2020-1"): TriageMemo(
            state="not_affected", justification="code_not_reachable", detail="admin only"
        )
    }
    prior = {
        ("npm:lodash", "CVE-2021-2"): PriorFinding(
            id="old",
            scan_id="s0",
            package="npm:lodash",
            vulnerability_id="CVE-2021-2",
            discovered_at=T0,
        )
    }
    django, lodash, _ = _findings(triage=triage, prior=prior)
    assert (django.state, django.justification, django.detail) == (
        "not_affected",
        "code_not_reachable",
        "admin only",
    )
    assert lodash.discovered_at == T0 and django.discovered_at == T1


def test_the_summary_counts_effective_findings_and_names_blocking_ones() -> None:
    findings = _findings()
    summary = summarize(COMPONENTS, findings, threshold=0.1)
    django, lodash, _ = findings
    assert summary.component_count == 3
    assert summary.finding_count == 2 and summary.not_evaluated_count == 1
    assert (summary.severity_counts.CRITICAL, summary.severity_counts.MEDIUM) == (1, 1)
    assert summary.highest_epss == 0.4 and summary.epss_over_threshold_count == 1
    # CRITICAL blocks; MEDIUM blocks only through its EPSS score.
    assert summary.blocking_finding_ids == sorted([django.id, lodash.id])
    assert summarize(COMPONENTS, findings, threshold=0.5).blocking_finding_ids == [django.id]

    triaged = _findings(
        triage={("PyPI:django", "CVE-2020-1"): TriageMemo(state="suppressed", detail="ok")}
    )
    after = summarize(COMPONENTS, triaged, threshold=0.5)
    assert after.finding_count == 1 and after.blocking_finding_total == 0
    assert after.severity_counts.CRITICAL == 0


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN"]),
            st.sampled_from(["new", "analyzing", "exploitable", "not_affected", "fixed"]),
            st.sampled_from(["affected", "not_evaluated"]),
            st.one_of(st.none(), st.floats(0, 1)),
        ),
        max_size=30,
    ),
    st.floats(0, 1),
)
def test_summary_laws(rows: list[tuple[str, str, str, float | None]], threshold: float) -> None:
    findings = [
        FindingRecord(
            id=f"f{i}",
            component_ref="a",
            component_name="a",
            component_version="1",
            purl=None,
            ecosystem="PyPI",
            package="PyPI:a",
            vulnerability_id=f"V{i}",
            advisory_ids=(f"V{i}",),
            aliases=(),
            match=match,
            severity=severity,
            epss=epss,
            state=state,
            discovered_at=T0,
        )
        for i, (severity, state, match, epss) in enumerate(rows)
    ]
    summary = summarize([], findings, threshold=threshold)
    counts = msgspec.structs.asdict(summary.severity_counts)
    assert sum(counts.values()) == summary.finding_count <= len(findings)
    assert summary.blocking_finding_total <= summary.finding_count
    assert summary.epss_over_threshold_count <= summary.finding_count
    assert summary.not_evaluated_count + summary.finding_count <= len(findings)
    assert set(summary.blocking_finding_ids) == {
        f.id for f in findings if is_blocking(f, threshold=threshold)
    }


def test_the_diff_to_the_previous_snapshot() -> None:
    findings = _findings()
    prior = [
        PriorFinding(
            id="p1",
            scan_id="s0",
            package="PyPI:django",
            vulnerability_id="CVE-2020-1",
            discovered_at=T0,
        ),
        PriorFinding(
            id="p2",
            scan_id="s0",
            package="PyPI:gone",
            vulnerability_id="CVE-2019-1",
            discovered_at=T0,
        ),
        PriorFinding(
            id="p3",
            scan_id="s0",
            package="npm:lodash",
            vulnerability_id="GHSA-3",
            discovered_at=T0,
            affected=False,
        ),
    ]
    created, resolved = snapshot_diff(findings, prior)
    assert [f.package for f in created] == ["npm:lodash"]  # affected only; django was there
    assert [p.id for p in resolved] == ["p2"]
    created, resolved = snapshot_diff(findings, [])
    assert len(created) == 2 and resolved == []


def test_the_lifecycle_is_final_once_finished() -> None:
    assert next_status("queued", "scan.started") == "running"
    assert next_status("running", "scan.started") is None  # a re-run's duplicate
    assert next_status("queued", "scan.progressed") == "running"
    assert next_status("running", "scan.completed") == "succeeded"
    assert next_status("queued", "scan.cancelled") == "cancelled"
    for final in ("succeeded", "failed", "cancelled"):
        for event in ("scan.started", "scan.completed", "scan.failed", "scan.cancelled"):
            assert next_status(final, event) is None
    with pytest.raises(ScanFinished):
        check_cancellable("succeeded", "s")
    check_cancellable("running", "s")
    with pytest.raises(ScanNotTerminal):
        check_deletable("running", None, force=True, scan_id="s")
    with pytest.raises(ScanLabelled):
        check_deletable("succeeded", "v1.0", force=False, scan_id="s")
    check_deletable("succeeded", "v1.0", force=True, scan_id="s")
    check_deletable("failed", None, force=False, scan_id="s")


def test_ids_are_deterministic_and_distinct() -> None:
    assert ids.finding_id("s", "a", "V") == ids.finding_id("s", "a", "V")
    assert (
        len(
            {
                ids.finding_id("s", "a", "V"),
                ids.finding_id("s", "aV", ""),
                ids.finding_id("s2", "a", "V"),
            }
        )
        == 3
    )
    assert ids.scan_event_id("s", "started") != ids.scan_event_id("s", "completed")
    assert ids.job_event_id("j", "x") != ids.scan_event_id("j", "x")


def test_the_sbom_of_a_source_scan_is_canonical_and_reads_back() -> None:
    records = component_records(
        [
            Component(
                ref="PyPI:django@3.2.0",
                name="django",
                version="3.2.0",
                purl="pkg:pypi/django@3.2.0",
                ecosystem="PyPI",
                scope="required",
            ),
            Component(
                ref="npm:jest@29.0.0",
                name="jest",
                version="29.0.0",
                purl="pkg:npm/jest@29.0.0",
                ecosystem="npm",
                scope="dev",
                licenses=(License(id="MIT"),),
            ),
        ],
        classify=_unknown,
    )
    deps = (Dependency("PyPI:django@3.2.0", ("npm:jest@29.0.0",)),)
    document = cyclonedx_for(records, deps)
    assert cyclonedx_for(records, deps) == document
    bom = parse_sbom(document)
    assert [c.purl for c in bom.components] == ["pkg:pypi/django@3.2.0", "pkg:npm/jest@29.0.0"]
    assert bom.dependencies == deps


def test_result_blobs_round_trip() -> None:
    result = ScanResult(
        scan_id="s1",
        project_id="p",
        format="cyclonedx-json",
        spec_version="1.5",
        components=tuple(COMPONENTS),
        findings=tuple(_findings()),
    )
    assert decode_result(encode_result(result)) == result
    assert encode_result(result) == encode_result(decode_result(encode_result(result)))


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_reading_uploads() -> None:
    assert vet_upload("source", _zip({"a.txt": b"x"})) == "zip"
    with pytest.raises(IngestError) as refused:
        vet_upload("source", b"not a zip")
    assert refused.value.code == "archive_invalid"
    with pytest.raises(NoLockfiles):
        read_upload("source", _zip({"src/app.py": b"print()"}))
    with pytest.raises(IngestError) as broken:
        read_upload("source", _zip({"web/package-lock.json": b"{"}))
    assert broken.value.code == "lockfile_malformed"
    assert (broken.value.location or "").startswith("web/package-lock.json")
    parsed = read_upload(
        "source",
        _zip({"requirements.txt": b"flask==2.0.0\n", "broken/package-lock.json": b"{"}),
    )
    assert [c.name for c in parsed.components] == ["flask"]
    assert [(n.path, n.code) for n in parsed.lockfiles] == [
        ("broken/package-lock.json", "lockfile_malformed"),
        ("requirements.txt", None),
    ]
    assert (parsed.format, parsed.spec_version) == ("cyclonedx-json", "1.5")


def test_the_package_shortcut_agrees_with_the_purl() -> None:
    """``package_of`` skips re-parsing the purl when the reader took ecosystem and name from
    it: over every real SBOM it must answer what ``component_package`` answers."""
    from services.scanner.domain.package_ids import component_package
    from services.scanner.scans.analysis import package_of
    from tests.conftest import shared_data

    checked = 0
    for path in sorted(shared_data("sbom").rglob("*")):
        if not path.is_file() or path.suffix not in (".json", ".xml", ".spdx"):
            continue
        try:
            bom = parse_sbom(path.read_bytes())
        except IngestError:
            continue
        for component in bom.components:
            assert package_of(component) == component_package(component), component
            checked += component.purl is not None
    assert checked > 1000
