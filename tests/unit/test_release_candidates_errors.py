"""Every problem of the candidates part carries Aviator's ``error`` message beside our
``code``, and survives the trip from release-decision to the gateway."""

from __future__ import annotations

import pytest

from contracts.events.releases import Blocker
from services.release_decision.candidates import errors
from shared.errors import GatehouseError, error_from_problem
from shared.http import problem_body

CASES: list[tuple[GatehouseError, int, str, str]] = [
    (
        errors.InvalidReleaseCandidateVersion("v1"),
        400,
        "invalid_release_candidate_version",
        "Invalid release candidate version",
    ),
    (errors.InvalidCommitHash("abc"), 400, "invalid_commit_hash", "Invalid commit hash"),
    (
        errors.RepositoryNotFound("a/b", "p"),
        404,
        "repository_not_found",
        "GitHub repository not found",
    ),
    (
        errors.EnvironmentNotFound("prod"),
        404,
        "environment_not_found",
        "Release environment not found",
    ),
    (errors.ReleaseNotFound("v1-rc1"), 404, "release_not_found", "Release not found"),
    (
        errors.CandidateExists("v1-rc1", repo="a/b", commit="c" * 40),
        409,
        "release_candidate_exists",
        "Release candidate already exists",
    ),
    (
        errors.InvalidEnvironmentName("a b"),
        422,
        "invalid_environment_name",
        "Invalid environment name",
    ),
    (
        errors.DeploymentBlocked(
            environment="prod",
            commit="c" * 40,
            blockers=[Blocker(code="no_evidence", message="m", ref="sbom")],
        ),
        409,
        "release_blocked",
        "Release candidate is blocked",
    ),
    (
        errors.OverrideNotAllowed(),
        403,
        "override_not_allowed",
        "Only an APPROVER may override the release gate",
    ),
    (errors.ProjectArchived("p"), 409, "project_archived", "The project is archived"),
]


@pytest.mark.parametrize(("exc", "status", "code", "error"), CASES, ids=[c[2] for c in CASES])
def test_problems_carry_aviators_error(
    exc: GatehouseError, status: int, code: str, error: str
) -> None:
    body = problem_body(exc, request_id="r1")
    assert (body["status"], body["code"], body["error"]) == (status, code, error)
    # As the gateway rebuilds it from the RPC reply.
    again = error_from_problem({k: v for k, v in body.items() if k != "request_id"})
    relayed = problem_body(again, request_id="r2")
    assert (relayed["status"], relayed["code"], relayed["error"]) == (status, code, error)
    assert relayed["detail"] == body["detail"]
    assert relayed["title"] == body["title"], "the owner's title survives the relay"


def test_a_blocked_deployment_lists_its_blockers() -> None:
    blocker = Blocker(code="vulnerability", message="CVE-1 in x", ref="f1")
    body = problem_body(
        errors.DeploymentBlocked(environment="prod", commit="c" * 40, blockers=[blocker]),
        request_id="r",
    )
    assert body["decision"] == "NO_SHIP"
    assert body["blockers"] == [{"code": "vulnerability", "message": "CVE-1 in x", "ref": "f1"}]
