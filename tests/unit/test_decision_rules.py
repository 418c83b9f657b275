"""The release gate's pure rules: evaluate(policy, evidence), with property tests."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.events.releases import BLOCKER_CODES, Blocker
from contracts.events.scans import NOT_EFFECTIVE_STATES, VEX_STATES
from services.release_decision.decisions.domain.model import (
    BlockEvidence,
    EffectivePolicy,
    Evidence,
    FindingEvidence,
    SignatureEvidence,
    SnapshotEvidence,
    VulnDbEvidence,
)
from services.release_decision.decisions.domain.rules import NO_RULES, evaluate

DEFAULT = EffectivePolicy()
SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")
TRIAGED_AWAY = sorted(NOT_EFFECTIVE_STATES)
IMPORTED_AT = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
NOW = IMPORTED_AT + dt.timedelta(hours=1)
# A database imported an hour before the decision, that the snapshot was matched against.
FRESH = VulnDbEvidence(
    version=7, imported_at=IMPORTED_AT, digest=None, matched_version=7, advisory_count=3461
)


def finding(fid: str, severity: str = "CRITICAL", **kw: object) -> FindingEvidence:
    return FindingEvidence(
        id=fid, package="PyPI:django", vulnerability_id=f"CVE-{fid}", severity=severity, **kw
    )  # type: ignore[arg-type]


def evidence(*findings: FindingEvidence, vulndb: VulnDbEvidence = FRESH, **kw: object) -> Evidence:
    return Evidence(
        repo="acme/web",
        commit="abc1234",
        snapshot=SnapshotEvidence(scan_id="s1", findings=tuple(findings), vulndb=vulndb),
        evaluated_at=kw.pop("evaluated_at", NOW),
        **kw,
    )  # type: ignore[arg-type]


def codes(blockers: tuple[Blocker, ...]) -> list[tuple[str, str | None]]:
    return [(b.code, b.ref) for b in blockers]


def test_no_evidence_fails_closed() -> None:
    result = evaluate(DEFAULT, Evidence(repo="acme/web", commit="abc1234"))
    assert result.decision == "NO_SHIP"
    assert codes(result.blockers) == [("no_evidence", "sbom")]
    nothing_required = EffectivePolicy(required_evidence=())
    assert evaluate(nothing_required, Evidence(repo="a/b", commit="abc1234")).decision == "NO_SHIP"


def test_empty_rule_set_fails_closed() -> None:
    assert NO_RULES.code in BLOCKER_CODES
    result = evaluate(DEFAULT, evidence(), rules=())
    assert (result.decision, result.blockers) == ("NO_SHIP", (NO_RULES,))


def test_pending_scan_blocks_and_hides_the_older_snapshot() -> None:
    result = evaluate(DEFAULT, evidence(finding("f1"), pending_scan_id="s2"))
    assert codes(result.blockers) == [("evidence_pending", "s2")]
    pending_only = Evidence(repo="a/b", commit="abc1234", pending_scan_id="s2")
    assert codes(evaluate(DEFAULT, pending_only).blockers) == [("evidence_pending", "s2")]


def test_every_blocker_is_listed_sorted() -> None:
    policy = EffectivePolicy(require_signed_commits=True, required_evidence=("sbom", "signature"))
    ev = Evidence(
        repo="acme/web",
        commit="abc1234",
        snapshot=SnapshotEvidence(
            scan_id="s1",
            forbidden_license_count=2,
            findings=(finding("f2", "HIGH"), finding("f1"), finding("f3", "LOW")),
            vulndb=FRESH,
        ),
        blocks=(BlockEvidence(block_id="b1", message="quarantined image"),),
    )
    result = evaluate(policy, ev)
    assert result.decision == "NO_SHIP"
    assert codes(result.blockers) == [
        ("artifact_blocked", "b1"),
        ("forbidden_license", "s1"),
        ("no_evidence", "signature"),
        ("unsigned_commit", "abc1234"),
        ("vulnerability", "f1"),
        ("vulnerability", "f2"),
    ]
    assert "2 components have a forbidden license" in result.blockers[1].message
    assert result.blockers[4].message == "CVE-f1 in PyPI:django (CRITICAL)"


def test_severity_and_epss_threshold() -> None:
    low_but_likely = finding("f1", "LOW", epss=0.42)
    assert evaluate(DEFAULT, evidence(low_but_likely)).decision == "SHIP"
    with_epss = EffectivePolicy(epss_threshold=0.4)
    result = evaluate(with_epss, evidence(low_but_likely))
    assert codes(result.blockers) == [("vulnerability", "f1")]
    assert "EPSS 0.420" in result.blockers[0].message
    assert evaluate(EffectivePolicy(epss_threshold=0.5), evidence(low_but_likely)).decision == (
        "SHIP"
    )
    not_evaluated = finding("f2", affected=False)
    assert evaluate(DEFAULT, evidence(not_evaluated)).decision == "SHIP"


def test_signature_verdicts_and_licenses_off() -> None:
    policy = EffectivePolicy(require_signed_commits=True)
    bad = SignatureEvidence(event_id="e1", verified=False, reason="invalid")
    result = evaluate(policy, evidence(signature=bad))
    assert codes(result.blockers) == [("invalid_signature", "abc1234")]
    assert "invalid" in result.blockers[0].message
    revoked = SignatureEvidence(event_id="e3", verified=False, reason="unsigned")
    assert codes(evaluate(policy, evidence(signature=revoked)).blockers) == [
        ("unsigned_commit", "abc1234")
    ]
    # Required evidence is met only by a valid verification, with or without the rule.
    wants = EffectivePolicy(required_evidence=("sbom", "signature"))
    assert ("no_evidence", "signature") in codes(evaluate(wants, evidence(signature=bad)).blockers)
    assert ("no_evidence", "signature") not in codes(
        evaluate(
            wants,
            evidence(signature=SignatureEvidence(event_id="e4", verified=True, reason="valid")),
        ).blockers
    )
    good = SignatureEvidence(event_id="e2", verified=True, reason="valid")
    assert evaluate(policy, evidence(signature=good)).decision == "SHIP"
    licenses = Evidence(
        repo="a/b",
        commit="abc1234",
        snapshot=SnapshotEvidence(scan_id="s", forbidden_license_count=1, vulndb=FRESH),
        evaluated_at=NOW,
    )
    assert evaluate(EffectivePolicy(block_forbidden_licenses=False), licenses).decision == "SHIP"
    assert "1 component has" in evaluate(DEFAULT, licenses).blockers[0].message


# ---- properties -----------------------------------------------------------------------------
findings_st = st.lists(
    st.builds(
        FindingEvidence,
        id=st.sampled_from([f"f{i}" for i in range(12)]),
        package=st.sampled_from(["PyPI:a", "npm:b"]),
        vulnerability_id=st.sampled_from(["CVE-1", "CVE-2", "GHSA-x"]),
        severity=st.sampled_from(SEVERITIES),
        epss=st.none() | st.floats(0.0, 1.0),
        state=st.sampled_from(VEX_STATES),
        affected=st.booleans(),
    ),
    max_size=12,
)
policies_st = st.builds(
    EffectivePolicy,
    block_on_severity=st.lists(st.sampled_from(SEVERITIES), unique=True).map(tuple),
    epss_threshold=st.none() | st.floats(0.0, 1.0),
    block_forbidden_licenses=st.booleans(),
    require_signed_commits=st.booleans(),
    required_evidence=st.sampled_from([("sbom",), ("sbom", "signature"), ("signature",), ()]),
    max_vulndb_age_hours=st.sampled_from([0, 1, 2, 72]),
    block_on_unknown_severity=st.booleans(),
)
signature_st = st.none() | st.builds(
    SignatureEvidence, event_id=st.just("e"), verified=st.booleans(), reason=st.just("r")
)


def _evidence(
    findings: list[FindingEvidence], licenses: int, signature: SignatureEvidence | None
) -> Evidence:
    return Evidence(
        repo="acme/web",
        commit="abc1234",
        snapshot=SnapshotEvidence(
            scan_id="s1", forbidden_license_count=licenses, findings=tuple(findings), vulndb=FRESH
        ),
        signature=signature,
        evaluated_at=NOW,
    )


@settings(max_examples=200, deadline=None)
@given(policies_st, findings_st, st.integers(0, 3), signature_st, st.sampled_from(SEVERITIES))
def test_adding_a_blocking_finding_never_ships(
    policy: EffectivePolicy,
    findings: list[FindingEvidence],
    licenses: int,
    signature: SignatureEvidence | None,
    severity: str,
) -> None:
    before = evaluate(policy, _evidence(findings, licenses, signature))
    extra = FindingEvidence(
        id="new", package="PyPI:z", vulnerability_id="CVE-9", severity=severity, epss=1.0
    )
    after = evaluate(policy, _evidence([*findings, extra], licenses, signature))
    if before.decision == "NO_SHIP":
        assert after.decision == "NO_SHIP"
    # The new finding is blocking whenever the policy blocks its severity or has a threshold.
    unknown_blocks = severity == "UNKNOWN" and policy.block_on_unknown_severity
    if severity in policy.block_on_severity or unknown_blocks or policy.epss_threshold is not None:
        assert after.decision == "NO_SHIP"
        assert ("vulnerability", "new") in codes(after.blockers)


@settings(max_examples=200, deadline=None)
@given(policies_st, findings_st, st.sampled_from(TRIAGED_AWAY))
def test_triaging_every_blocker_away_ships(
    policy: EffectivePolicy, findings: list[FindingEvidence], state: str
) -> None:
    signature = SignatureEvidence(event_id="e", verified=True, reason="valid")
    triaged = [
        f.__class__(**{**{k: getattr(f, k) for k in f.__struct_fields__}, "state": state})
        for f in findings
    ]
    assert evaluate(policy, _evidence(triaged, 0, signature)).decision == "SHIP"


@settings(max_examples=200, deadline=None)
@given(policies_st, findings_st, st.integers(0, 3), signature_st)
def test_output_is_deterministic_sorted_and_distinct(
    policy: EffectivePolicy,
    findings: list[FindingEvidence],
    licenses: int,
    signature: SignatureEvidence | None,
) -> None:
    ev = _evidence(findings, licenses, signature)
    first = evaluate(policy, ev)
    reordered = evaluate(policy, _evidence(list(reversed(findings)), licenses, signature))
    assert first == evaluate(policy, ev) == reordered
    keys = [(b.code, b.ref or "", b.message) for b in first.blockers]
    assert keys == sorted(keys)
    assert len(set(first.blockers)) == len(first.blockers)
    assert (first.decision == "SHIP") == (not first.blockers)
    # Clients switch on the code: every code the rules produce is in the published list.
    assert {b.code for b in first.blockers} <= set(BLOCKER_CODES)


# ---- the vulnerability database --------------------------------------------------------------
def test_a_snapshot_matched_against_an_empty_database_never_ships() -> None:
    never_imported = VulnDbEvidence()
    result = evaluate(DEFAULT, evidence(vulndb=never_imported))
    assert codes(result.blockers) == [("vulndb_missing", "s1")]
    # Imported since, but the snapshot was matched before (0 advisories): still missing.
    matched_empty = VulnDbEvidence(version=9, imported_at=IMPORTED_AT, matched_version=3)
    assert codes(evaluate(DEFAULT, evidence(vulndb=matched_empty)).blockers) == [
        ("vulndb_missing", "s1")
    ]
    assert evaluate(DEFAULT, evidence()).decision == "SHIP"
    # A pending scan replaces the snapshot: its blockers wait, as the others do.
    pending = evaluate(DEFAULT, evidence(vulndb=never_imported, pending_scan_id="s2"))
    assert codes(pending.blockers) == [("evidence_pending", "s2")]


def test_a_stale_database_blocks_per_policy() -> None:
    late = IMPORTED_AT + dt.timedelta(hours=72, seconds=1)
    result = evaluate(DEFAULT, evidence(evaluated_at=late))
    assert codes(result.blockers) == [("vulndb_stale", "s1")]
    assert result.blockers[0].message == (
        "the newest OSV import (2024-05-01T12:00Z) is older than 72 hours"
    )
    on_the_limit = IMPORTED_AT + dt.timedelta(hours=72)
    assert evaluate(DEFAULT, evidence(evaluated_at=on_the_limit)).decision == "SHIP"
    assert (
        evaluate(EffectivePolicy(max_vulndb_age_hours=0), evidence(evaluated_at=late)).decision
        == "SHIP"
    )
    assert evaluate(EffectivePolicy(max_vulndb_age_hours=1000), evidence(evaluated_at=late)) == (
        evaluate(DEFAULT, evidence())
    )


def test_unknown_severity_blocks_by_default() -> None:
    unrated = finding("f1", "UNKNOWN")
    result = evaluate(DEFAULT, evidence(unrated))
    assert codes(result.blockers) == [("vulnerability", "f1")]
    assert result.blockers[0].message == "CVE-f1 in PyPI:django (UNKNOWN)"
    allow = EffectivePolicy(block_on_unknown_severity=False)
    assert evaluate(allow, evidence(unrated)).decision == "SHIP"
    # Listing UNKNOWN in block_on_severity blocks it whatever the switch says.
    listed = EffectivePolicy(block_on_severity=("UNKNOWN",), block_on_unknown_severity=False)
    assert evaluate(listed, evidence(unrated)).decision == "NO_SHIP"
    assert evaluate(allow, evidence(finding("f2", "UNKNOWN", state="not_affected"))).decision == (
        "SHIP"
    )


vulndb_st = st.builds(
    VulnDbEvidence,
    version=st.integers(0, 5),
    imported_at=st.none() | st.just(IMPORTED_AT),
    matched_version=st.integers(0, 5),
    advisory_count=st.integers(0, 3),
)


@settings(max_examples=200, deadline=None)
@given(policies_st, findings_st, st.integers(0, 3), signature_st, vulndb_st)
def test_no_knowledge_never_ships(
    policy: EffectivePolicy,
    findings: list[FindingEvidence],
    licenses: int,
    signature: SignatureEvidence | None,
    vulndb: VulnDbEvidence,
) -> None:
    """Whatever the policy and the rest of the evidence: a snapshot matched against no
    advisories, or with no import known, never ships."""
    ev = Evidence(
        repo="acme/web",
        commit="abc1234",
        snapshot=SnapshotEvidence(
            scan_id="s1", forbidden_license_count=licenses, findings=tuple(findings), vulndb=vulndb
        ),
        signature=signature,
        evaluated_at=NOW,
    )
    result = evaluate(policy, ev)
    empty = vulndb.version == 0 or vulndb.advisory_count == 0 or vulndb.imported_at is None
    assert (("vulndb_missing", "s1") in codes(result.blockers)) == empty
    if empty:
        assert result.decision == "NO_SHIP"


@settings(max_examples=200, deadline=None)
@given(policies_st, st.integers(0, 400), st.integers(0, 400))
def test_staleness_only_grows_with_time(policy: EffectivePolicy, first: int, later: int) -> None:
    """Once stale, a database stays stale as time passes; within the limit it never is."""
    at = IMPORTED_AT + dt.timedelta(hours=first)
    after = at + dt.timedelta(hours=later)
    stale_then = ("vulndb_stale", "s1") in codes(
        evaluate(policy, evidence(evaluated_at=at)).blockers
    )
    stale_after = ("vulndb_stale", "s1") in codes(
        evaluate(policy, evidence(evaluated_at=after)).blockers
    )
    if stale_then:
        assert stale_after
    limit = policy.max_vulndb_age_hours
    assert stale_then == (limit > 0 and first > limit)
