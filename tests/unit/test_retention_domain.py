"""Retention's pure rules: the path glob, the policy checks, and the plan — keep_last per
package, max_age_days, both, the guards (promoted, recently downloaded), quarantined
artifacts left alone — with properties over random repositories: nothing guarded,
quarantined, young or among the newest is ever deleted, and planning again after applying
a plan deletes nothing more."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.events.registry import RetentionPolicy
from services.scanner.retention.domain import (
    Candidate,
    InvalidPattern,
    check_policy,
    compile_pattern,
    path_matches,
    plan,
    same_name,
    still_deletable,
    without,
)

NOW = dt.datetime(2030, 6, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def art(
    name: str | None,
    version: str,
    *,
    days_old: float,
    seq: int,
    path: str | None = None,
    **fields: object,
) -> Candidate:
    return Candidate(
        id=f"art_{seq:032x}",
        path=path or f"{name}-{version}-py3-none-any.whl",
        name=name,
        display_name=name,
        version=version,
        digest="sha256:" + f"{seq:064x}",
        size=100,
        uploaded_at=NOW - days_old * DAY,
        uploaded_seq=seq,
        **fields,  # type: ignore[arg-type]
    )


def policy(**fields: object) -> RetentionPolicy:
    return RetentionPolicy(name="p", **fields)  # type: ignore[arg-type]


def deleted_ids(p: RetentionPolicy, artifacts: list[Candidate]) -> list[str]:
    return [d.artifact.id for d in plan(p, artifacts, now=NOW).deletions]


# ---- the glob -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("*.whl", "demo-1.0-py3-none-any.whl", True),
        ("*.whl", "demo-1.0.tar.gz", False),
        ("*.whl", "sub/demo-1.0-py3-none-any.whl", False),  # * stays in its segment
        ("**/*.whl", "demo.whl", True),  # **/ also matches nothing
        ("**/*.whl", "a/b/demo.whl", True),
        ("tools/**", "tools/linux/amd64/tool.tar.gz", True),
        ("tools/*", "tools/linux/amd64/tool.tar.gz", False),
        ("demo-?.?-*", "demo-1.0-py3-none-any.whl", True),
        ("demo-?.?-*", "demo-10.0-py3-none-any.whl", False),
        ("a+b[1].txt", "a+b[1].txt", True),  # everything else is literal
        ("a+b[1].txt", "ab1.txt", False),
    ],
)
def test_the_glob(pattern: str, path: str, matches: bool) -> None:
    assert path_matches(pattern, path) is matches


def test_no_pattern_matches_everything_and_bad_patterns_are_refused() -> None:
    assert path_matches(None, "any/thing")
    for bad in ("/abs/*", "a\x00b", "tab\there"):
        with pytest.raises(InvalidPattern):
            compile_pattern(bad)


def test_policy_checks() -> None:
    assert check_policy(policy(keep_last=3)) == []
    assert check_policy(policy(max_age_days=30, pattern="**/*.whl")) == []
    fields = [p.field for p in check_policy(policy())]
    assert fields == ["$.keep_last", "$.max_age_days"]
    assert [p.field for p in check_policy(policy(keep_last=1, pattern="/x"))] == ["$.pattern"]
    assert same_name("Nightly", "nightly") and not same_name("nightly", "weekly")


# ---- the plan -------------------------------------------------------------------------------
def test_keep_last_per_package_newest_first() -> None:
    artifacts = [art("demo", f"1.{i}", days_old=10 - i, seq=i) for i in range(5)]
    artifacts += [art("other", "1.0", days_old=50, seq=10)]
    result = plan(policy(keep_last=2), artifacts, now=NOW)
    assert [d.artifact.version for d in result.deletions] == ["1.2", "1.1", "1.0"]
    assert (result.kept, result.matched, result.protected) == (3, 6, [])
    assert "not among the newest 2 of demo (#3)" in result.deletions[0].why
    assert result.bytes_freed == 300


def test_newest_is_by_upload_time_then_stream_order() -> None:
    # Uploaded out of stream order (a replayed import): the time decides, then the sequence.
    artifacts = [
        art("demo", "old", days_old=9, seq=5),
        art("demo", "new", days_old=1, seq=1),
        art("demo", "tie-a", days_old=5, seq=2),
        art("demo", "tie-b", days_old=5, seq=3),
    ]
    assert [
        d.artifact.version for d in plan(policy(keep_last=2), artifacts, now=NOW).deletions
    ] == ["tie-a", "old"]


def test_max_age_and_both_rules_keep_the_union() -> None:
    artifacts = [art("demo", f"1.{i}", days_old=40 - 10 * i, seq=i) for i in range(4)]
    # Ages 40, 30, 20, 10 days.
    assert [
        d.artifact.version for d in plan(policy(max_age_days=30), artifacts, now=NOW).deletions
    ] == ["1.1", "1.0"]  # exactly 30 days old is not younger than 30
    both = plan(policy(max_age_days=15, keep_last=2), artifacts, now=NOW)
    # 1.3 and 1.2 are the newest two; 1.3 is also young: only 1.1 and 1.0 go.
    assert [d.artifact.version for d in both.deletions] == ["1.1", "1.0"]
    assert "40 day(s) old, past max_age_days 15" in both.deletions[1].why
    assert plan(policy(max_age_days=100, keep_last=1), artifacts, now=NOW).deletions == []


def test_guards_and_quarantine() -> None:
    artifacts = [
        art("demo", "1.0", days_old=90, seq=1, promoted=True),
        art("demo", "1.1", days_old=80, seq=2, last_pulled_at=NOW - 3 * DAY),
        art("demo", "1.2", days_old=70, seq=3, last_pulled_at=NOW - 40 * DAY),
        art("demo", "1.3", days_old=60, seq=4, quarantined=True),
        art("demo", "1.4", days_old=50, seq=5),
    ]
    result = plan(policy(keep_last=1, keep_pulled_days=30), artifacts, now=NOW)
    # 1.4 is the newest (the quarantined 1.3 is not counted); 1.2 was pulled long ago.
    assert [d.artifact.version for d in result.deletions] == ["1.2"]
    assert [(p.artifact.version, p.guard) for p in result.protected] == [
        ("1.1", "pulled_recently"),
        ("1.0", "promoted"),
    ]
    assert result.matched == 4  # the quarantined one is not retention's business
    # keep_pulled_days 0: downloads protect nothing.
    assert [
        d.artifact.version
        for d in plan(policy(keep_last=1, keep_pulled_days=0), artifacts, now=NOW).deletions
    ] == ["1.2", "1.1"]


def test_pattern_scopes_and_nameless_files_group_by_folder() -> None:
    artifacts = [
        art(None, "", days_old=5 - i, seq=i, path=f"tools/linux/tool-{i}.tar.gz") for i in range(3)
    ] + [
        art(None, "", days_old=9, seq=10, path="tools/mac/tool-0.tar.gz"),
        art(None, "", days_old=9, seq=11, path="docs/readme.txt"),
    ]
    result = plan(policy(keep_last=1, pattern="tools/**"), artifacts, now=NOW)
    assert [d.artifact.path for d in result.deletions] == [
        "tools/linux/tool-1.tar.gz",
        "tools/linux/tool-0.tar.gz",
    ]
    assert result.matched == 4


def test_still_deletable_looks_again() -> None:
    p = policy(keep_last=1, keep_pulled_days=7)
    a = art("demo", "1.0", days_old=90, seq=1)
    assert still_deletable(p, a, now=NOW)
    assert not still_deletable(p, None, now=NOW)
    for changed in (
        art("demo", "1.0", days_old=90, seq=1, promoted=True),
        art("demo", "1.0", days_old=90, seq=1, quarantined=True),
        art("demo", "1.0", days_old=90, seq=1, last_pulled_at=NOW - DAY),
    ):
        assert not still_deletable(p, changed, now=NOW)


# ---- properties -----------------------------------------------------------------------------
@st.composite
def repositories(draw: st.DrawFn) -> list[Candidate]:
    count = draw(st.integers(min_value=0, max_value=30))
    artifacts = []
    for seq in range(count):
        name = draw(st.sampled_from(["demo", "other", None]))
        pulled = draw(st.none() | st.integers(min_value=0, max_value=60))
        artifacts.append(
            art(
                name,
                str(seq),
                days_old=draw(st.integers(min_value=0, max_value=120)),
                seq=seq,
                path=draw(st.sampled_from(["a", "b/c", "b/d/e"])) + f"/{name}-{seq}.whl",
                promoted=draw(st.booleans()),
                quarantined=draw(st.booleans()),
                last_pulled_at=None if pulled is None else NOW - pulled * DAY,
            )
        )
    return artifacts


policies = st.builds(
    RetentionPolicy,
    name=st.just("p"),
    pattern=st.sampled_from([None, "**", "b/**", "a/*", "**/demo-*"]),
    keep_last=st.none() | st.integers(min_value=1, max_value=5),
    max_age_days=st.none() | st.integers(min_value=1, max_value=100),
    keep_pulled_days=st.integers(min_value=0, max_value=60),
)


@settings(max_examples=150, deadline=None)
@given(repositories(), policies)
def test_nothing_protected_young_or_newest_is_ever_deleted(
    artifacts: list[Candidate], p: RetentionPolicy
) -> None:
    result = plan(p, artifacts, now=NOW)
    gone = {d.artifact.id for d in result.deletions}
    for a in artifacts:
        if a.id not in gone:
            continue
        assert not a.promoted and not a.quarantined
        assert path_matches(p.pattern, a.path)
        assert a.last_pulled_at is None or NOW - a.last_pulled_at >= p.keep_pulled_days * DAY
        assert p.keep_last is not None or p.max_age_days is not None
        if p.max_age_days is not None:
            assert NOW - a.uploaded_at >= p.max_age_days * DAY
        if p.keep_last is not None:
            newer = [
                b
                for b in artifacts
                if b.group == a.group
                and not b.quarantined
                and path_matches(p.pattern, b.path)
                and (b.uploaded_at, b.uploaded_seq) > (a.uploaded_at, a.uploaded_seq)
            ]
            assert len(newer) >= p.keep_last
    considered = [a for a in artifacts if not a.quarantined and path_matches(p.pattern, a.path)]
    assert result.kept + len(result.deletions) + len(result.protected) == len(considered)
    assert result.matched == len(considered)


@settings(max_examples=150, deadline=None)
@given(repositories(), policies)
def test_planning_again_after_applying_deletes_nothing_more(
    artifacts: list[Candidate], p: RetentionPolicy
) -> None:
    first = plan(p, artifacts, now=NOW)
    rest = without(artifacts, (d.artifact.id for d in first.deletions))
    again = plan(p, rest, now=NOW)
    assert again.deletions == []
    assert [x.artifact.id for x in again.protected] == [x.artifact.id for x in first.protected]
