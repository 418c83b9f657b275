"""Registers release candidates, environments and deployments on the release-decision
runtime: the ``candidates`` projection and ``svc.release-decision.rc_*``. Set up after
decisions: deploying to a protected environment reads the candidate commit's decision."""

from __future__ import annotations

from contracts.rpc import release_candidates as rpc
from services.release_decision.candidates.handlers import CandidateHandlers, DecisionSource
from services.release_decision.candidates.projection import CandidatesProjection
from shared.service import Runtime


def decision_source() -> DecisionSource | None:
    """The decisions part's read of a commit's current decision, when it offers one."""
    try:
        from services.release_decision.decisions.queries import current_decision
    except ModuleNotFoundError as exc:
        if exc.name != "services.release_decision.decisions.queries":
            raise
        return None
    return current_decision


async def setup(runtime: Runtime) -> None:
    runner = runtime.add_projection(CandidatesProjection())
    handlers = CandidateHandlers(
        pool=runtime.pool,
        runner=runner,
        settings=runtime.settings,
        bus=runtime.bus,
        decision_of=decision_source(),
    )
    for operation, request_type, handler in (
        (rpc.CANDIDATE_CREATE, rpc.CandidateCreateRequest, handlers.candidate_create),
        (rpc.RELEASE_LIST, rpc.ReleaseListRequest, handlers.release_list),
        (rpc.RELEASE_GET, rpc.ReleaseGetRequest, handlers.release_get),
        (rpc.ENVIRONMENT_PUT, rpc.EnvironmentPutRequest, handlers.environment_put),
        (rpc.ENVIRONMENT_LIST, rpc.EnvironmentListRequest, handlers.environment_list),
        (rpc.DEPLOYMENT_CREATE, rpc.DeploymentCreateRequest, handlers.deployment_create),
        (rpc.DEPLOYMENT_STATUS, rpc.DeploymentStatusRequest, handlers.deployment_status),
        (rpc.DEPLOYMENT_LIST, rpc.DeploymentListRequest, handlers.deployment_list),
    ):
        runtime.rpc.add(operation, request_type, handler)  # type: ignore[arg-type]
