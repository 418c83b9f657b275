"""Announcing findings: the ``finding.*`` events a scan or a re-match publishes, many at once.

Every event has a deterministic id, given by the caller, so a job run again after a crash
publishes the same ids and JetStream drops the repeats within its duplicate window. A scan's
announcements are derived from its result blob alone (``scan_announcements``), so a worker
that takes over after a crash announces exactly what the first one would have.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

from contracts.envelope import EventPayload
from contracts.events.scans import FindingCreated, FindingResolved, FindingThresholdExceeded
from services.scanner.scans.analysis import is_effective
from services.scanner.scans.result import FindingRecord, ScanResult
from shared.bus import Bus

# Events in flight at once (their acks are awaited per chunk; their relative order is free).
PUBLISH_CHUNK = 256
SYSTEM = "system"


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic collector (process-wide, for a fraction of a second): bulk steps of a
    scan allocate hundreds of thousands of acyclic objects, and each collection would walk
    the scan's live components and findings (as in ``AdvisoryIndex.upsert_many``)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


async def publish_many(
    bus: Bus,
    events: Sequence[tuple[EventPayload, str]],
    *,
    aggregate: str,
    correlation_id: str | None = None,
    causation_id: str | None = None,
) -> None:
    """Publish ``(payload, event id)`` pairs with up to PUBLISH_CHUNK acks outstanding."""
    with gc_paused():
        for start in range(0, len(events), PUBLISH_CHUNK):
            await asyncio.gather(
                *(
                    bus.publish(
                        payload,
                        aggregate=aggregate,
                        actor=SYSTEM,
                        correlation_id=correlation_id,
                        causation_id=causation_id,
                        event_id=event_id,
                    )
                    for payload, event_id in events[start : start + PUBLISH_CHUNK]
                )
            )


def finding_created(
    finding: FindingRecord, *, scan_id: str, project_id: str, cause: str
) -> FindingCreated:
    return FindingCreated(
        finding_id=finding.id,
        scan_id=scan_id,
        project_id=project_id,
        component_ref=finding.component_ref,
        component_name=finding.component_name,
        purl=finding.purl,
        package=finding.package,
        version=finding.component_version,
        ecosystem=finding.ecosystem,
        vulnerability_id=finding.vulnerability_id,
        advisory_ids=list(finding.advisory_ids),
        aliases=list(finding.aliases),
        severity=finding.severity,  # type: ignore[arg-type]
        cvss_score=finding.cvss_score,
        epss=finding.epss,
        epss_percentile=finding.epss_percentile,
        state=finding.state,  # type: ignore[arg-type]
        justification=finding.justification,
        discovered_at=finding.discovered_at,
        cause=cause,  # type: ignore[arg-type]
    )


def scan_announcements(
    result: ScanResult, *, threshold: float
) -> list[tuple[FindingCreated | FindingResolved | FindingThresholdExceeded, str]]:
    """A scan's ``finding.*`` events with the step naming each (its id's seed): created for
    the findings new since the previous snapshot, resolved for the previous snapshot's
    findings gone, threshold-exceeded for new effective ones at or above the threshold."""
    new = set(result.created)
    created = [f for f in result.findings if f.id in new]
    events: list[tuple[FindingCreated | FindingResolved | FindingThresholdExceeded, str]] = [
        (
            finding_created(f, scan_id=result.scan_id, project_id=result.project_id, cause="scan"),
            f"finding.created:{f.id}",
        )
        for f in created
    ]
    events += [
        (
            FindingResolved(
                finding_id=gone.finding_id,
                scan_id=gone.scan_id,
                project_id=result.project_id,
                vulnerability_id=gone.vulnerability_id,
                package=gone.package,
                reason=gone.reason,  # type: ignore[arg-type]
                resolved_by_scan_id=result.scan_id,
            ),
            f"finding.resolved:{gone.finding_id}",
        )
        for gone in result.resolved
    ]
    events += [
        (event, f"finding.threshold-exceeded:{event.finding_id}")
        for event in threshold_exceeded(
            created, scan_id=result.scan_id, project_id=result.project_id, threshold=threshold
        )
    ]
    return events


def threshold_exceeded(
    created: Iterable[FindingRecord], *, scan_id: str, project_id: str, threshold: float
) -> list[FindingThresholdExceeded]:
    """``finding.threshold-exceeded`` for each new effective finding at or above the EPSS
    threshold."""
    return [
        FindingThresholdExceeded(
            finding_id=f.id,
            scan_id=scan_id,
            project_id=project_id,
            vulnerability_id=f.vulnerability_id,
            epss=f.epss,
            threshold=threshold,
        )
        for f in created
        if is_effective(f) and f.epss is not None and f.epss >= threshold
    ]
