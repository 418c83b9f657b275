"""Retention's problem codes (``contracts/rpc/retention.py`` lists them for the gateway)."""

from __future__ import annotations

from services.scanner.registry.domain import FieldProblem
from services.scanner.registry.errors import invalid
from services.scanner.retention.domain import PolicyProblem
from shared.errors import Conflict, NotFound, ValidationFailed


class PolicyNotFound(NotFound):
    code, title = "retention_policy_not_found", "No such retention policy"


class RunNotFound(NotFound):
    code, title = "retention_run_not_found", "No such retention run"


class PolicyNameInUse(Conflict):
    code, title = (
        "retention_policy_name_in_use",
        "A retention policy with this name already exists in the repository",
    )


class PolicyDisabled(Conflict):
    code, title = "retention_policy_disabled", "The retention policy is disabled"


def invalid_policy(problems: list[PolicyProblem]) -> ValidationFailed:
    return invalid(
        [FieldProblem(p.field, p.message) for p in problems], code="invalid_retention_policy"
    )
