"""GitHub Actions dispatches: the request bodies that start a workflow from a Gatehouse
event, so a real GitHub workflow runs a deployment or a build.

* ``repository_dispatch`` (``POST /repos/{owner}/{repo}/dispatches``):
  ``{"event_type": …, "client_payload": {…}}``; the workflow reads
  ``github.event.client_payload``. ``client_payload`` holds at most 10 top-level keys
  (GitHub's limit): ``event_id``, ``event_type``, ``delivery_id`` and ``data`` (the event's
  payload as published).
* ``workflow_dispatch`` (``POST /repos/{owner}/{repo}/actions/workflows/{id}/dispatches``):
  ``{"ref": …, "inputs": {…}}``; inputs are strings and GitHub refuses (422) an input the
  workflow does not declare, so only a fixed, documented set is sent (:data:`INPUTS`), each
  when the event has it.

Both authenticate with ``Authorization: Bearer <token>`` and answer ``204``.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

import msgspec

from contracts.envelope import RawEnvelope

GITHUB_ACCEPT: Final = "application/vnd.github+json"
GITHUB_API_VERSION: Final = "2022-11-28"
# The workflow_dispatch inputs, in order: the declared set a workflow can rely on.
INPUTS: Final = (
    "gatehouse_event",
    "delivery_id",
    "deployment_id",
    "environment",
    "release_candidate_id",
    "release_candidate_version",
    "release_version",
    "repo",
    "commit",
)
_PAYLOAD_INPUTS: Final = INPUTS[2:]


class DispatchOptions(msgspec.Struct, frozen=True, kw_only=True):
    """What a dispatch format needs besides the event (``subscriptions.workflow_options``)."""

    ref: str | None = None
    event_type: str | None = None


def dispatch_headers(token: str) -> dict[str, str]:
    return {
        "Accept": GITHUB_ACCEPT,
        "Authorization": f"Bearer {token}",
        "X-GitHub-Api-Version": GITHUB_API_VERSION,
    }


def repository_dispatch_body(
    envelope: RawEnvelope, *, delivery_id: uuid.UUID, options: DispatchOptions
) -> dict[str, Any]:
    return {
        "event_type": options.event_type or envelope.type,
        "client_payload": {
            "event_id": envelope.id,
            "event_type": envelope.type,
            "delivery_id": str(delivery_id),
            "data": msgspec.Raw(envelope.data),
        },
    }


def workflow_inputs(envelope: RawEnvelope, *, delivery_id: uuid.UUID) -> dict[str, str]:
    data = msgspec.json.decode(envelope.data)
    inputs = {"gatehouse_event": envelope.type, "delivery_id": str(delivery_id)}
    if isinstance(data, dict):
        for name in _PAYLOAD_INPUTS:
            value = data.get(name)
            if value is None and name == "release_candidate_version":
                value = data.get("version")  # release.candidate-created names it so
            if isinstance(value, str | int) and not isinstance(value, bool):
                inputs[name] = str(value)
    return inputs


def workflow_dispatch_body(
    envelope: RawEnvelope, *, delivery_id: uuid.UUID, options: DispatchOptions
) -> dict[str, Any]:
    if not options.ref:
        raise ValueError("a workflow_dispatch needs the ref the workflow runs on")
    return {"ref": options.ref, "inputs": workflow_inputs(envelope, delivery_id=delivery_id)}
