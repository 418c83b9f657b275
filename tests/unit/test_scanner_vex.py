"""VEX triage rules: the transition matrix, roles, reasons, optimistic concurrency, bulk."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.scanner.domain.findings import NOT_EFFECTIVE, VEX_STATES, is_effective
from services.scanner.domain.vex import (
    ALLOWED,
    CYCLONEDX_JUSTIFICATIONS,
    OPENVEX_JUSTIFICATIONS,
    BulkRow,
    TriageError,
    TriageState,
    bulk_transition,
    to_cyclonedx,
    to_openvex,
    transition,
    validate_bulk_ids,
)

ALL_ROLES = ("ADMIN", "AUDITOR", "VIEWER", "OPERATOR", "APPROVER", "POLICY_AUTHOR")


def reasons_for(state: str) -> dict[str, str | None]:
    if state == "not_affected":
        return {"justification": "code_not_reachable", "detail": ""}
    if state in ("false_positive", "suppressed"):
        return {"justification": None, "detail": "accepted by the security board"}
    return {"justification": None, "detail": ""}


def code_of(current: TriageState, to_state: str, roles: tuple[str, ...], **kw: object) -> str:
    args: dict[str, object] = {**reasons_for(to_state), **kw}
    try:
        transition(current, to_state, roles=roles, **args)  # type: ignore[arg-type]
    except TriageError as exc:
        return exc.code
    return "ok"


def test_effective_states() -> None:
    assert [s for s in VEX_STATES if is_effective(s)] == ["new", "analyzing", "exploitable"]
    assert NOT_EFFECTIVE == {"not_affected", "false_positive", "suppressed", "fixed"}


def test_new_is_never_a_target() -> None:
    for state in VEX_STATES:
        assert "new" not in ALLOWED[state]
        assert code_of(TriageState(state=state), "new", ("ADMIN",)) == "vex_transition_not_allowed"


def test_fixed_may_only_be_reopened() -> None:
    fixed = TriageState(state="fixed")
    for target in ("not_affected", "false_positive", "suppressed"):
        assert code_of(fixed, target, ("ADMIN",)) == "vex_transition_not_allowed"
    for target in ("analyzing", "exploitable"):
        assert code_of(fixed, target, ("ADMIN",)) == "ok"


@pytest.mark.parametrize("source", VEX_STATES)
@pytest.mark.parametrize("target", VEX_STATES)
def test_matrix_for_full_roles(source: str, target: str) -> None:
    expected = "ok" if target in ALLOWED[source] else "vex_transition_not_allowed"  # type: ignore[index]
    for role in ("ADMIN", "POLICY_AUTHOR", "APPROVER"):
        assert code_of(TriageState(state=source), target, (role,)) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("role", ["VIEWER", "AUDITOR"])
def test_readers_cannot_triage(role: str) -> None:
    for target in VEX_STATES:
        assert code_of(TriageState(state="new"), target, (role,)) in (
            "vex_role_forbidden",
            "vex_transition_not_allowed" if target == "new" else "vex_role_forbidden",
        )
    with pytest.raises(TriageError) as caught:
        transition(TriageState(state="new"), "analyzing", roles=(role,))
    assert caught.value.status == 403


def test_operator_cannot_suppress_or_declare_false_positive() -> None:
    new = TriageState(state="new")
    assert code_of(new, "suppressed", ("OPERATOR",)) == "vex_role_forbidden"
    assert code_of(new, "false_positive", ("OPERATOR",)) == "vex_role_forbidden"
    for target in ("analyzing", "exploitable", "not_affected", "fixed"):
        assert code_of(new, target, ("OPERATOR",)) == "ok"


def test_operator_may_reopen_a_suppression_but_not_reclassify_it() -> None:
    suppressed = TriageState(state="suppressed", detail="risk accepted")
    assert code_of(suppressed, "exploitable", ("OPERATOR",)) == "ok"
    assert code_of(suppressed, "analyzing", ("OPERATOR",)) == "ok"
    assert code_of(suppressed, "not_affected", ("OPERATOR",)) == "vex_role_forbidden"
    assert code_of(suppressed, "fixed", ("OPERATOR",)) == "vex_role_forbidden"
    # Any one role that allows it is enough.
    assert code_of(suppressed, "not_affected", ("OPERATOR", "APPROVER")) == "ok"


def test_not_affected_needs_a_known_justification() -> None:
    new = TriageState(state="new")
    assert code_of(new, "not_affected", ("ADMIN",), justification=None) == (
        "vex_justification_required"
    )
    assert code_of(new, "not_affected", ("ADMIN",), justification="because") == (
        "vex_justification_invalid"
    )
    for justification in CYCLONEDX_JUSTIFICATIONS + OPENVEX_JUSTIFICATIONS:
        assert code_of(new, "not_affected", ("ADMIN",), justification=justification) == "ok"


def test_policy_closures_need_a_reason_and_justification_is_not_applicable_elsewhere() -> None:
    new = TriageState(state="new")
    for target in ("false_positive", "suppressed"):
        assert code_of(new, target, ("ADMIN",), detail="  ") == "vex_detail_required"
    assert (
        code_of(new, "exploitable", ("ADMIN",), justification="code_not_present")
        == "vex_justification_not_applicable"
    )
    assert code_of(new, "analyzing", ("ADMIN",), detail="x" * 4001) == "vex_detail_too_long"
    assert code_of(new, "bogus", ("ADMIN",)) == "vex_state_invalid"


def test_if_match_revision() -> None:
    current = TriageState(state="new", revision=3)
    with pytest.raises(TriageError) as caught:
        transition(current, "analyzing", roles=("ADMIN",), expected_revision=2)
    assert caught.value.code == "precondition_failed"
    assert caught.value.status == 412
    assert caught.value.extra["current_revision"] == 3
    done = transition(current, "analyzing", roles=("ADMIN",), expected_revision=3)
    assert (done.from_state, done.to_state, done.revision, done.changed) == (
        "new",
        "analyzing",
        4,
        True,
    )


def test_role_is_checked_before_the_revision() -> None:
    # A principal who may not triage learns nothing about the finding's revision.
    current = TriageState(state="new", revision=3)
    assert code_of(current, "analyzing", ("VIEWER",), expected_revision=1) == ("vex_role_forbidden")


def test_same_state_restates_reasons_or_is_a_noop() -> None:
    current = TriageState(
        state="not_affected", justification="code_not_present", detail="", revision=2
    )
    same = transition(current, "not_affected", roles=("ADMIN",), justification="code_not_present")
    assert (same.changed, same.revision) == (False, 2)
    other = transition(
        current, "not_affected", roles=("ADMIN",), justification="code_not_reachable"
    )
    assert (other.changed, other.revision) == (True, 3)


@given(
    source=st.sampled_from(VEX_STATES),
    target=st.sampled_from(VEX_STATES),
    roles=st.sets(st.sampled_from(ALL_ROLES), max_size=3),
)
def test_a_decision_is_a_triaged_value_or_a_coded_error(
    source: str, target: str, roles: set[str]
) -> None:
    current = TriageState(state=source, revision=1)  # type: ignore[arg-type]
    try:
        decided = transition(current, target, roles=roles, **reasons_for(target))  # type: ignore[arg-type]
    except TriageError as exc:
        assert exc.code in {
            "vex_role_forbidden",
            "vex_transition_not_allowed",
        }
        assert exc.status in (403, 409)
        return
    assert decided.to_state == target
    assert target in ALLOWED[source]  # type: ignore[index]
    assert roles & {"ADMIN", "POLICY_AUTHOR", "APPROVER", "OPERATOR"}
    if not roles & {"ADMIN", "POLICY_AUTHOR", "APPROVER"}:
        assert target not in ("suppressed", "false_positive")


def test_justification_vocabularies_map_both_ways() -> None:
    for value in CYCLONEDX_JUSTIFICATIONS:
        assert to_cyclonedx(value) == value
        assert to_openvex(value) in OPENVEX_JUSTIFICATIONS
    for value in OPENVEX_JUSTIFICATIONS:
        assert to_openvex(value) == value
        assert to_cyclonedx(value) in CYCLONEDX_JUSTIFICATIONS
        # OpenVEX -> CycloneDX -> OpenVEX keeps the meaning where CycloneDX has one value.
    assert to_openvex(to_cyclonedx("vulnerable_code_not_in_execute_path")) == (
        "vulnerable_code_not_in_execute_path"
    )


# --- bulk --------------------------------------------------------------------------------


def ids(n: int) -> list[str]:
    return [str(uuid.UUID(int=i + 1)) for i in range(n)]


def test_bulk_ids_envelope() -> None:
    assert validate_bulk_ids(ids(200)) == tuple(ids(200))
    assert validate_bulk_ids([i.upper() for i in ids(2)]) == tuple(ids(2))
    cases = [
        ([], "bulk_ids_required", "$.ids"),
        (ids(201), "bulk_too_many_ids", "$.ids"),
        ([*ids(2), "nope"], "bulk_id_invalid", "$.ids[2]"),
        ([*ids(3), ids(3)[1]], "bulk_id_duplicate", "$.ids[3]"),
    ]
    for given_ids, code, location in cases:
        with pytest.raises(TriageError) as caught:
            validate_bulk_ids(given_ids)
        assert (caught.value.code, caught.value.status) == (code, 422)
        assert caught.value.extra["location"] == location


def test_bulk_rows_fail_alone() -> None:
    a, b, c, d = ids(4)
    rows = [
        BulkRow(a, TriageState(state="new")),
        BulkRow(b, TriageState(state="suppressed", detail="accepted")),
        BulkRow(c, None),
        BulkRow(d, TriageState(state="exploitable", revision=5)),
    ]
    results = bulk_transition(
        rows, "not_affected", roles=("OPERATOR",), justification="code_not_present"
    )
    assert [(r.id, r.status, r.code) for r in results] == [
        (a, "updated", None),
        (b, "failed", "vex_role_forbidden"),
        (c, "failed", "not_found"),
        (d, "updated", None),
    ]
    assert results[3].revision == 6
    assert results[0].triaged is not None and results[0].triaged.to_state == "not_affected"


def test_bulk_envelope_refusals_raise() -> None:
    rows = [BulkRow(ids(1)[0], TriageState(state="new"))]
    with pytest.raises(TriageError) as caught:
        bulk_transition(rows, "suppressed", roles=("OPERATOR",), detail="x")
    assert caught.value.code == "vex_role_forbidden"
    with pytest.raises(TriageError) as caught:
        bulk_transition(rows, "not_affected", roles=("ADMIN",))
    assert caught.value.code == "vex_justification_required"
    unchanged = bulk_transition(
        [BulkRow(ids(1)[0], TriageState(state="analyzing"))], "analyzing", roles=("ADMIN",)
    )
    assert unchanged[0].status == "unchanged"
