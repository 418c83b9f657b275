"""Deterministic ids: the same scan, component and weakness always give the same finding id,
and the same step of the same job always gives the same event id (JetStream drops a
re-published id inside its duplicate window, and the projections treat a repeat as a no-op),
so a re-run after a crash and a replay agree with the first run."""

from __future__ import annotations

import uuid

# Fixed forever: changing it would change every finding id.
NAMESPACE = uuid.UUID("5b0e6a9c-3f43-5d1e-9a3c-6f1d2b7c8e40")


def _uuid5(*parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "\x00".join(parts)))


def finding_id(scan_id: str, component_ref: str, vulnerability_id: str) -> str:
    return _uuid5("finding", scan_id, component_ref, vulnerability_id)


def scan_event_id(scan_id: str, step: str) -> str:
    """The id of one lifecycle step of a scan (``started``, ``progress:parse``, ``completed``,
    ``created:<finding id>`` …)."""
    return _uuid5("scan-event", scan_id, step)


def job_event_id(job_id: str, step: str) -> str:
    return _uuid5("job-event", job_id, step)


def scan_job_id(scan_id: str) -> str:
    return f"scan:{scan_id}"


def rematch_job_id(import_id: str, project_id: str) -> str:
    return f"rematch:{import_id}:{project_id}"
