"""Deployment status changes and the protected-environment gate.

Statuses are GitHub's; any status may follow any other (a CD pipeline reports what
happened, in whatever order), and reporting the status a deployment already has changes
nothing. A ``success`` marks the environment's older deployments that are ``success``
``inactive``, as GitHub's ``auto_inactive`` does: only what was live is replaced; an older
failed or still running deployment keeps its status. "Older" is creation order in the
environment (``order``: the stream sequence of the deployment's first event).
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from contracts.events.deployments import DeploymentStatus
from contracts.events.releases import Blocker, Decision

APPROVER = "APPROVER"


class DeploymentState(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    status: DeploymentStatus
    order: int


class StatusPlan(msgspec.Struct, frozen=True, kw_only=True):
    """What a status report does: create the deployment (``create``), change its status
    (``change``), and supersede older successful deployments (``supersede``, oldest first)."""

    create: bool
    change: bool
    supersede: tuple[str, ...] = ()


def plan_status(
    current: DeploymentState | None,
    status: DeploymentStatus,
    *,
    environment: Sequence[DeploymentState],
    order_if_created: int,
) -> StatusPlan:
    """The events a status report of ``current`` (None: no deployment of the candidate in
    the environment yet) needs. Reporting ``success`` again supersedes what an interrupted
    earlier report left live, so a retry completes it."""
    create = current is None
    change = create or (current is not None and current.status != status)
    supersede: tuple[str, ...] = ()
    if status == "success":
        own_id = current.id if current is not None else None
        order = current.order if current is not None else order_if_created
        supersede = tuple(
            d.id
            for d in sorted(environment, key=lambda d: (d.order, d.id))
            if d.id != own_id and d.order < order and d.status == "success"
        )
    return StatusPlan(create=create, change=change, supersede=supersede)


class GateRefused(msgspec.Struct, frozen=True, kw_only=True):
    """NO_SHIP into a protected environment without an override."""

    blockers: tuple[Blocker, ...]


class OverrideNotAllowed(msgspec.Struct, frozen=True, kw_only=True):
    """An override sent by a caller without the APPROVER role."""


class GatePassed(msgspec.Struct, frozen=True, kw_only=True):
    """``overridden``: NO_SHIP, deployed on an APPROVER's override."""

    checked: bool
    overridden: bool = False


GateOutcome = GatePassed | GateRefused | OverrideNotAllowed


def override_allowed(roles: Sequence[str]) -> bool:
    return APPROVER in roles


def gate(
    *,
    protected: bool,
    decision: Decision | None,
    blockers: Sequence[Blocker],
    override_requested: bool,
    roles: Sequence[str],
) -> GateOutcome:
    """May this deployment go ahead? ``decision`` is the candidate commit's current
    decision (only needed, and only asked for, when ``protected``). An override is an
    APPROVER's act: sent by anyone else it is refused whatever the decision, so that a
    caller never learns to rely on an authority it does not have."""
    if override_requested and not override_allowed(roles):
        return OverrideNotAllowed()
    if not protected:
        return GatePassed(checked=False)
    if decision == "SHIP":
        return GatePassed(checked=True)
    if override_requested:
        return GatePassed(checked=True, overridden=True)
    return GateRefused(blockers=tuple(blockers))
