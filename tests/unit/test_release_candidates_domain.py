"""The pure rules of release candidates and deployments: versions, commits, status plans
and the protected-environment gate."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.events.deployments import DEPLOYMENT_STATUSES
from contracts.events.releases import Blocker
from services.release_decision.candidates.domain.deployments import (
    DeploymentState,
    GatePassed,
    GateRefused,
    OverrideNotAllowed,
    gate,
    plan_status,
)
from services.release_decision.candidates.domain.versions import (
    InvalidCandidateVersion,
    InvalidCommitHash,
    is_environment_name,
    normalise_commit,
    parse_candidate_version,
    repo_in_project,
)


# ---- versions -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "release", "rc"),
    [
        ("v1.4.0-rc2", "v1.4.0", 2),
        ("v1.4.0-rc0", "v1.4.0", 0),
        ("1.0-rc10", "1.0", 10),
        ("2024.06.01-hotfix-rc3", "2024.06.01-hotfix", 3),
        ("v1-rc1-rc2", "v1-rc1", 2),
        ("release_7-rc007", "release_7", 7),
    ],
)
def test_candidate_versions_name_their_release(text: str, release: str, rc: int) -> None:
    parsed = parse_candidate_version(text)
    assert (parsed.version, parsed.release, parsed.rc_number) == (text, release, rc)


@pytest.mark.parametrize(
    "text",
    [
        "v1.4.0",
        "v1.4.0-rc",
        "v1.4.0-RC1",
        "v1.4.0-rc1 ",
        "-rc1",
        "v1.4.0-rc-1",
        "v1.4.0-rc1a",
        "v 1-rc1",
        "v1/2-rc1",
        "",
        "v1.4.0-rc1234567",
        "x" * 121 + "-rc1",
    ],
)
def test_a_version_without_the_rc_suffix_is_refused(text: str) -> None:
    with pytest.raises(InvalidCandidateVersion):
        parse_candidate_version(text)


@given(
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,30}", fullmatch=True),
    st.integers(min_value=0, max_value=999_999),
)
def test_release_and_number_round_trip(release: str, number: int) -> None:
    parsed = parse_candidate_version(f"{release}-rc{number}")
    assert parsed.release == release and parsed.rc_number == number


def test_commits_are_full_shas() -> None:
    assert normalise_commit("A" * 40) == "a" * 40
    assert normalise_commit("0123456789abcdef" * 4) == "0123456789abcdef" * 4
    for bad in ("", "abc1234", "a" * 39, "a" * 41, "a" * 63, "a" * 65, "g" * 40, "a" * 39 + " "):
        with pytest.raises(InvalidCommitHash):
            normalise_commit(bad)


def test_repos_are_matched_as_the_project_spells_them() -> None:
    assert repo_in_project("ACME/Api", ["acme/web", "acme/api"]) == "acme/api"
    assert repo_in_project("acme/api2", ["acme/api"]) is None
    assert repo_in_project("acme/api", []) is None


def test_environment_names() -> None:
    assert all(is_environment_name(n) for n in ("prod", "staging-eu_1", "A", "x" * 63))
    assert not any(is_environment_name(n) for n in ("", "-x", "a b", "a.b", "x" * 64, "ä"))


# ---- status plans ---------------------------------------------------------------------------
def _d(id_: str, status: str, order: int) -> DeploymentState:
    return DeploymentState(id=id_, status=status, order=order)  # type: ignore[arg-type]


def test_a_new_report_creates_the_deployment() -> None:
    plan = plan_status(None, "in_progress", environment=[], order_if_created=10)
    assert (plan.create, plan.change, plan.supersede) == (True, True, ())


def test_the_same_status_again_changes_nothing() -> None:
    current = _d("d1", "queued", 1)
    plan = plan_status(current, "queued", environment=[current], order_if_created=10)
    assert (plan.create, plan.change, plan.supersede) == (False, False, ())


@pytest.mark.parametrize("before", DEPLOYMENT_STATUSES)
@pytest.mark.parametrize("after", DEPLOYMENT_STATUSES)
def test_any_status_may_follow_any_other(before: str, after: str) -> None:
    current = _d("d1", before, 1)
    plan = plan_status(current, after, environment=[current], order_if_created=10)  # type: ignore[arg-type]
    assert plan.change == (before != after) and not plan.create


def test_success_marks_older_successful_deployments_inactive() -> None:
    env = [_d("old", "success", 1), _d("failed", "failure", 2), _d("older", "success", 0)]
    current = _d("new", "in_progress", 3)
    plan = plan_status(current, "success", environment=[*env, current], order_if_created=99)
    assert plan.supersede == ("older", "old"), "oldest first, failed ones keep their status"


def test_success_of_an_older_deployment_leaves_newer_ones_live() -> None:
    env = [_d("newer", "success", 5), _d("oldest", "success", 1)]
    current = _d("mid", "failure", 3)
    plan = plan_status(current, "success", environment=[*env, current], order_if_created=99)
    assert plan.supersede == ("oldest",)


def test_a_repeated_success_completes_what_an_interrupted_one_left() -> None:
    current = _d("new", "success", 3)
    plan = plan_status(
        current, "success", environment=[_d("old", "success", 1), current], order_if_created=99
    )
    assert (plan.change, plan.supersede) == (False, ("old",))


def test_a_created_success_supersedes_every_live_deployment() -> None:
    env = [_d("a", "success", 1), _d("b", "success", 2)]
    plan = plan_status(None, "success", environment=env, order_if_created=99)
    assert plan.create and plan.supersede == ("a", "b")


@given(
    st.lists(
        st.tuples(st.sampled_from(DEPLOYMENT_STATUSES), st.integers(0, 50)),
        min_size=1,
        max_size=12,
        unique_by=lambda t: t[1],
    ),
    st.data(),
)
def test_success_supersedes_exactly_the_older_live_ones(
    rows: list[tuple[str, int]], data: st.DataObject
) -> None:
    env = [_d(f"d{order}", status, order) for status, order in rows]
    current = data.draw(st.sampled_from(env))
    plan = plan_status(current, "success", environment=env, order_if_created=99)
    expected = {d.id for d in env if d.order < current.order and d.status == "success"}
    assert set(plan.supersede) == expected and len(plan.supersede) == len(expected)
    assert current.id not in plan.supersede
    for status in DEPLOYMENT_STATUSES:
        if status != "success":
            assert (
                plan_status(current, status, environment=env, order_if_created=99).supersede == ()
            )


# ---- the gate -------------------------------------------------------------------------------
BLOCKER = Blocker(code="vulnerability", message="CVE-1 in x (HIGH)", ref="f1")


def test_unprotected_environments_take_anything() -> None:
    outcome = gate(
        protected=False,
        decision="NO_SHIP",
        blockers=[BLOCKER],
        override_requested=False,
        roles=["OPERATOR"],
    )
    assert outcome == GatePassed(checked=False)


def test_protected_environments_take_ship() -> None:
    outcome = gate(
        protected=True, decision="SHIP", blockers=[], override_requested=False, roles=["OPERATOR"]
    )
    assert outcome == GatePassed(checked=True)


def test_protected_environments_refuse_no_ship_with_its_blockers() -> None:
    outcome = gate(
        protected=True,
        decision="NO_SHIP",
        blockers=[BLOCKER],
        override_requested=False,
        roles=["ADMIN", "OPERATOR"],
    )
    assert outcome == GateRefused(blockers=(BLOCKER,))


def test_an_unknown_decision_fails_closed() -> None:
    outcome = gate(
        protected=True, decision=None, blockers=[], override_requested=False, roles=["ADMIN"]
    )
    assert isinstance(outcome, GateRefused)


def test_only_an_approver_overrides() -> None:
    approved = gate(
        protected=True,
        decision="NO_SHIP",
        blockers=[BLOCKER],
        override_requested=True,
        roles=["APPROVER"],
    )
    assert approved == GatePassed(checked=True, overridden=True)
    for protected in (True, False):
        refused = gate(
            protected=protected,
            decision="NO_SHIP",
            blockers=[BLOCKER],
            override_requested=True,
            roles=["ADMIN", "OPERATOR"],
        )
        assert refused == OverrideNotAllowed()
    # A needless override is not recorded as one.
    needless = gate(
        protected=True, decision="SHIP", blockers=[], override_requested=True, roles=["APPROVER"]
    )
    assert needless == GatePassed(checked=True)
