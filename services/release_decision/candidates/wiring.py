"""Registers release candidates, environments and deployments on the release-decision
runtime: the ``candidates`` projection and ``svc.release-decision.rc_*``. Set up after
decisions: deploying to a protected environment reads the candidate commit's decision."""

from __future__ import annotations

from contracts.rpc import release_candidates as rpc
from services.release_decision.candidates import store
from services.release_decision.candidates.handlers import CandidateHandlers
from services.release_decision.candidates.projection import CandidatesProjection
from services.release_decision.candidates.workflows import JOB_KIND, WorkflowStatusPublisher
from services.release_decision.decisions.queries import current_decision
from shared import jobs
from shared.service import Runtime


async def setup(runtime: Runtime) -> None:
    runner = runtime.add_projection(CandidatesProjection())
    handlers = CandidateHandlers(
        pool=runtime.pool,
        runner=runner,
        settings=runtime.settings,
        bus=runtime.bus,
        decision_of=current_decision,
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
    publisher = WorkflowStatusPublisher(pool=runtime.pool, bus=runtime.bus)

    async def caught_up() -> bool:
        return await jobs.projection_caught_up(runtime.bus, runner)

    worker = jobs.JobWorker(
        name="workflow-status",
        pool=runtime.pool,
        database_url=runtime.settings.database_url,
        table=store.JOBS_TABLE,
        kinds=(JOB_KIND,),
        handler=publisher.run,
        caught_up=caught_up,
        wait_progress=jobs.progress_waiter(runner),
        owner=f"{runtime.instance}:workflow-status",
        lease_seconds=runtime.settings.job_lease_seconds,
        max_attempts=runtime.settings.job_max_attempts,
        bus=runtime.bus,
    )

    async def started() -> None:
        worker.start()

    runtime.on_started.append(started)
    runtime.on_stopping.append(worker.stop)
