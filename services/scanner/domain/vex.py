"""VEX triage: which state a finding may move to, who may move it, and with what reason.

States (``findings.VEX_STATES``): ``new`` (found, nobody has looked), ``analyzing``,
``exploitable``, and four that take a finding out of the gate (not *effective*):
``not_affected``, ``false_positive``, ``suppressed``, ``fixed``.

Transition matrix (``ALLOWED``), with the reason for each rule:

* ``new`` is only initial. Nothing moves *to* it: once somebody has looked, "nobody has
  looked" is false; reopening a decision goes to ``analyzing`` (or straight to
  ``exploitable``).
* From ``new``, ``analyzing`` and ``exploitable`` every other state may be set: triage in
  one step is normal (and a VEX import does exactly that).
* ``not_affected``, ``false_positive`` and ``suppressed`` are closed for different reasons;
  a closed finding may be reopened (``analyzing``, ``exploitable``), re-classified among the
  three, or marked ``fixed`` (a patch landed after all).
* ``fixed`` may only be reopened (``analyzing``, ``exploitable``: the fix was incomplete or
  was reverted). "Fixed, but actually never affected" is a correction that goes through
  ``analyzing`` so the history shows the reopening.
* The same state again (not ``new``) is allowed and re-states the justification or detail;
  with nothing changed it is a no-op (``Triaged.changed`` is False: no event).

``fixed`` is set by triage (a backported patch the scanner cannot see) or by evidence: a
newer snapshot without the finding resolves it (``finding.resolved``). That evidence path is
the scanner's own record, not a triage, and is not subject to this matrix or to roles.

Roles (a principal may hold several; any one that allows the change is enough):

* VIEWER and AUDITOR do not triage (auditors review the record, they do not write it).
* OPERATOR may set ``analyzing``, ``exploitable``, ``not_affected`` (with a structured
  justification) and ``fixed``. Not ``suppressed`` (accepting a known risk is a policy
  decision) and not ``false_positive`` (it closes a finding with free text only, declaring
  the evidence wrong: the same kind of policy call). For the same reason an OPERATOR cannot
  move a finding out of ``suppressed`` / ``false_positive`` into another closed state; it
  may reopen one, since that only makes the gate stricter.
* POLICY_AUTHOR, APPROVER and ADMIN may do everything.

Reasons: ``not_affected`` needs a justification from the CycloneDX or OpenVEX vocabulary
(stored as given; ``to_cyclonedx`` / ``to_openvex`` map between them for export);
``false_positive`` and ``suppressed`` need a reason text in ``detail``; a justification
with any other state is refused (it would be silently meaningless).

Errors are ``TriageError`` with stable codes: ``vex_role_forbidden`` (403),
``precondition_failed`` (412), ``vex_transition_not_allowed`` (409),
``vex_justification_required`` / ``vex_justification_invalid`` /
``vex_justification_not_applicable`` / ``vex_detail_required`` / ``vex_detail_too_long``
(422). Checks run in that order: who, then whether the caller saw the current version,
then the matrix, then the reasons.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Literal

import msgspec

from .errors import ScannerError
from .findings import NOT_EFFECTIVE, VEX_STATES, VexState, is_effective

__all__ = [
    "ALLOWED",
    "BULK_MAX_IDS",
    "CYCLONEDX_JUSTIFICATIONS",
    "JUSTIFICATIONS",
    "OPENVEX_JUSTIFICATIONS",
    "BulkRow",
    "BulkRowResult",
    "TriageError",
    "TriageState",
    "Triaged",
    "bulk_transition",
    "check_request",
    "is_effective",
    "to_cyclonedx",
    "to_openvex",
    "transition",
    "validate_bulk_ids",
]

# --- the matrix --------------------------------------------------------------------------

_CLOSED_BY_JUDGEMENT: frozenset[VexState] = frozenset(
    {"not_affected", "false_positive", "suppressed"}
)
ALLOWED: dict[VexState, frozenset[VexState]] = {
    "new": frozenset(VEX_STATES) - {"new"},
    "analyzing": frozenset(VEX_STATES) - {"new"},
    "exploitable": frozenset(VEX_STATES) - {"new"},
    "not_affected": frozenset(VEX_STATES) - {"new"},
    "false_positive": frozenset(VEX_STATES) - {"new"},
    "suppressed": frozenset(VEX_STATES) - {"new"},
    "fixed": frozenset({"analyzing", "exploitable", "fixed"}),
}

# --- roles -------------------------------------------------------------------------------

TRIAGE_ALL: frozenset[str] = frozenset({"ADMIN", "POLICY_AUTHOR", "APPROVER"})
OPERATOR_TARGETS: frozenset[VexState] = frozenset(
    {"analyzing", "exploitable", "not_affected", "fixed"}
)
_POLICY_STATES: frozenset[VexState] = frozenset({"false_positive", "suppressed"})

# --- justifications ----------------------------------------------------------------------

CYCLONEDX_JUSTIFICATIONS: tuple[str, ...] = (
    "code_not_present",
    "code_not_reachable",
    "requires_configuration",
    "requires_dependency",
    "requires_environment",
    "protected_by_compiler",
    "protected_at_runtime",
    "protected_at_perimeter",
    "protected_by_mitigating_control",
)
OPENVEX_JUSTIFICATIONS: tuple[str, ...] = (
    "component_not_present",
    "vulnerable_code_not_present",
    "vulnerable_code_not_in_execute_path",
    "vulnerable_code_cannot_be_controlled_by_adversary",
    "inline_mitigations_already_exist",
)
JUSTIFICATIONS: frozenset[str] = frozenset(CYCLONEDX_JUSTIFICATIONS + OPENVEX_JUSTIFICATIONS)

# CycloneDX -> OpenVEX. CycloneDX is finer grained, so several values fold into one.
# ``requires_*``: the vulnerable code is there but the conditions an attacker needs
# (a configuration, a dependency, an environment) are absent -> cannot be controlled by an
# adversary. ``protected_*``: a control in the product or around it stops exploitation ->
# inline mitigations.
_CDX_TO_OPENVEX: dict[str, str] = {
    "code_not_present": "vulnerable_code_not_present",
    "code_not_reachable": "vulnerable_code_not_in_execute_path",
    "requires_configuration": "vulnerable_code_cannot_be_controlled_by_adversary",
    "requires_dependency": "vulnerable_code_cannot_be_controlled_by_adversary",
    "requires_environment": "vulnerable_code_cannot_be_controlled_by_adversary",
    "protected_by_compiler": "inline_mitigations_already_exist",
    "protected_at_runtime": "inline_mitigations_already_exist",
    "protected_at_perimeter": "inline_mitigations_already_exist",
    "protected_by_mitigating_control": "inline_mitigations_already_exist",
}
# OpenVEX -> CycloneDX: ``component_not_present`` has no component-level CycloneDX value;
# a component that is absent has no code present. ``cannot_be_controlled_by_adversary``
# is nearest to "requires an environment that is not present".
_OPENVEX_TO_CDX: dict[str, str] = {
    "component_not_present": "code_not_present",
    "vulnerable_code_not_present": "code_not_present",
    "vulnerable_code_not_in_execute_path": "code_not_reachable",
    "vulnerable_code_cannot_be_controlled_by_adversary": "requires_environment",
    "inline_mitigations_already_exist": "protected_by_mitigating_control",
}


def to_cyclonedx(justification: str) -> str:
    """The CycloneDX ``analysis.justification`` for a stored justification."""
    return _OPENVEX_TO_CDX.get(justification, justification)


def to_openvex(justification: str) -> str:
    """The OpenVEX ``justification`` for a stored justification."""
    return _CDX_TO_OPENVEX.get(justification, justification)


MAX_DETAIL_LENGTH = 4000

# --- errors and values -------------------------------------------------------------------


class TriageError(ScannerError):
    """A refused triage; ``code`` says which rule refused it."""

    code, status, title = "vex_transition_not_allowed", 409, "Transition not allowed"


def _error(code: str, detail: str, **extra: object) -> TriageError:
    status = {
        "vex_role_forbidden": 403,
        "precondition_failed": 412,
        "vex_transition_not_allowed": 409,
        "not_found": 404,
    }.get(code, 422)
    titles = {
        "vex_role_forbidden": "Role may not make this transition",
        "precondition_failed": "Precondition failed",
        "vex_transition_not_allowed": "Transition not allowed",
        "not_found": "Not found",
    }
    return TriageError(
        detail,
        code=code,
        status=status,
        title=titles.get(code, "Invalid triage"),
        extra=dict(extra),
    )


class TriageState(msgspec.Struct, frozen=True, kw_only=True):
    """What a finding carries that triage reads: its state, reasons and revision."""

    state: VexState
    justification: str | None = None
    detail: str = ""
    revision: int = 1


class Triaged(msgspec.Struct, frozen=True, kw_only=True):
    """An accepted transition. ``changed`` False: the same state and reasons again (no
    event, revision unchanged)."""

    from_state: VexState
    to_state: VexState
    justification: str | None
    detail: str
    revision: int
    changed: bool


def _may_triage(roles: frozenset[str]) -> bool:
    return bool(roles & (TRIAGE_ALL | {"OPERATOR"}))


def _role_allows(roles: frozenset[str], from_state: VexState | None, to_state: VexState) -> bool:
    if roles & TRIAGE_ALL:
        return True
    if "OPERATOR" not in roles:
        return False
    if to_state not in OPERATOR_TARGETS:
        return False
    # Leaving a policy closure for another closure re-decides the policy call.
    return not (from_state in _POLICY_STATES and to_state in NOT_EFFECTIVE)


def check_request(
    to_state: str,
    roles: Iterable[str],
    *,
    justification: str | None,
    detail: str,
) -> VexState:
    """Checks that do not depend on a finding (the envelope of a bulk request, or the
    first checks of a single one): the target is a state, the roles may set it, and the
    reasons fit it. Returns the target state."""
    role_set = frozenset(roles)
    if to_state not in VEX_STATES:
        raise _error(
            "vex_state_invalid",
            f"{to_state[:50]!r} is not a VEX state (one of {', '.join(VEX_STATES)})",
        )
    target: VexState = to_state  # narrowed by the membership test above
    if not _may_triage(role_set):
        raise _error(
            "vex_role_forbidden",
            "triage needs the OPERATOR, POLICY_AUTHOR, APPROVER or ADMIN role",
        )
    if not _role_allows(role_set, None, target):
        raise _error(
            "vex_role_forbidden",
            f"an OPERATOR may not set {target}; that needs POLICY_AUTHOR, APPROVER or ADMIN",
        )
    if target == "new":
        raise _error(
            "vex_transition_not_allowed",
            "new is only the initial state; reopen a finding with analyzing or exploitable",
        )
    _check_reasons(target, justification, detail)
    return target


def _check_reasons(target: VexState, justification: str | None, detail: str) -> None:
    if len(detail) > MAX_DETAIL_LENGTH:
        raise _error(
            "vex_detail_too_long",
            f"detail has {len(detail)} characters; at most {MAX_DETAIL_LENGTH} are kept",
        )
    if target == "not_affected":
        if not justification:
            raise _error(
                "vex_justification_required",
                "not_affected needs a justification: one of "
                + ", ".join(CYCLONEDX_JUSTIFICATIONS + OPENVEX_JUSTIFICATIONS),
            )
        if justification not in JUSTIFICATIONS:
            raise _error(
                "vex_justification_invalid",
                f"{justification[:80]!r} is not a CycloneDX or OpenVEX justification",
            )
        return
    if justification:
        raise _error(
            "vex_justification_not_applicable",
            f"a justification applies to not_affected only, not to {target}; "
            "give the reason in detail",
        )
    if target in _POLICY_STATES and not detail.strip():
        raise _error("vex_detail_required", f"{target} needs a reason in detail")


def transition(
    current: TriageState,
    to_state: str,
    *,
    roles: Iterable[str],
    justification: str | None = None,
    detail: str = "",
    expected_revision: int | None = None,
) -> Triaged:
    """Decide one triage of a finding in ``current``. ``expected_revision`` is the
    caller's ``If-Match`` (None: unconditional, as in a bulk transition or a VEX import).
    Raises ``TriageError``."""
    role_set = frozenset(roles)
    justification = justification or None
    target = check_request(to_state, role_set, justification=justification, detail=detail)
    if not _role_allows(role_set, current.state, target):
        raise _error(
            "vex_role_forbidden",
            f"an OPERATOR may reopen a {current.state} finding but not move it to {target}",
        )
    if expected_revision is not None and expected_revision != current.revision:
        raise _error(
            "precondition_failed",
            f"the finding is at revision {current.revision}, not {expected_revision}",
            current_revision=current.revision,
        )
    if target not in ALLOWED[current.state]:
        raise _error(
            "vex_transition_not_allowed",
            f"{current.state} may not become {target} (allowed: "
            f"{', '.join(s for s in VEX_STATES if s in ALLOWED[current.state])})",
        )
    changed = (target, justification, detail) != (
        current.state,
        current.justification,
        current.detail,
    )
    return Triaged(
        from_state=current.state,
        to_state=target,
        justification=justification,
        detail=detail,
        revision=current.revision + 1 if changed else current.revision,
        changed=changed,
    )


# --- bulk --------------------------------------------------------------------------------

BULK_MAX_IDS = 200
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def validate_bulk_ids(ids: Sequence[str]) -> tuple[str, ...]:
    """1..200 distinct finding ids (UUIDs, lower-cased). Raises a 422 ``TriageError`` for
    the whole request, naming the offending position."""
    if not ids:
        raise _error("bulk_ids_required", "give 1 to 200 finding ids", location="$.ids")
    if len(ids) > BULK_MAX_IDS:
        raise _error(
            "bulk_too_many_ids",
            f"{len(ids)} ids; at most {BULK_MAX_IDS} in one request",
            location="$.ids",
        )
    seen: dict[str, int] = {}
    for index, raw in enumerate(ids):
        value = raw.strip().lower()
        if not _UUID.fullmatch(value):
            raise _error(
                "bulk_id_invalid",
                f"{raw[:60]!r} is not a finding id (a UUID)",
                location=f"$.ids[{index}]",
            )
        if value in seen:
            raise _error(
                "bulk_id_duplicate",
                f"{value} is also at $.ids[{seen[value]}]",
                location=f"$.ids[{index}]",
            )
        seen[value] = index
    return tuple(seen)


class BulkRow(msgspec.Struct, frozen=True):
    """One requested finding: its current triage state, or None when it does not exist in
    the project (the wiring looks it up)."""

    id: str
    current: TriageState | None


RowStatus = Literal["updated", "unchanged", "failed"]


class BulkRowResult(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    id: str
    status: RowStatus
    from_state: VexState | None = None
    to_state: VexState | None = None
    revision: int | None = None
    code: str | None = None  # why it failed (a TriageError code, or not_found)
    detail: str | None = None
    triaged: Triaged | None = None  # what to record, for the rows that changed


def bulk_transition(
    rows: Sequence[BulkRow],
    to_state: str,
    *,
    roles: Iterable[str],
    justification: str | None = None,
    detail: str = "",
) -> list[BulkRowResult]:
    """Per-row results of one transition applied to many findings, in request order.

    Envelope-level refusals (a role that may not set the target at all, missing reasons)
    raise ``TriageError`` before any row is looked at; the rest is per row: a row the matrix
    refuses, or that an OPERATOR may not reopen that way, fails alone."""
    role_set = frozenset(roles)
    check_request(to_state, role_set, justification=justification or None, detail=detail)
    results: list[BulkRowResult] = []
    for row in rows:
        if row.current is None:
            results.append(
                BulkRowResult(
                    id=row.id,
                    status="failed",
                    code="not_found",
                    detail="no such finding in this project",
                )
            )
            continue
        try:
            decided = transition(
                row.current, to_state, roles=role_set, justification=justification, detail=detail
            )
        except TriageError as exc:
            results.append(
                BulkRowResult(
                    id=row.id,
                    status="failed",
                    from_state=row.current.state,
                    code=exc.code,
                    detail=exc.detail,
                )
            )
            continue
        results.append(
            BulkRowResult(
                id=row.id,
                status="updated" if decided.changed else "unchanged",
                from_state=decided.from_state,
                to_state=decided.to_state,
                revision=decided.revision,
                triaged=decided if decided.changed else None,
            )
        )
    return results
