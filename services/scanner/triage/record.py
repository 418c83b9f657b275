"""Recording triage: one ``finding.triaged`` per changed finding, then waiting until the
scans projection has applied them (read-your-writes; the caller still holds the locks, so
the next triage of those findings reads them as they now are)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from contracts.events.scans import FindingTriaged, TriageCause
from services.scanner.domain.vex import Triaged
from services.scanner.triage.store import TriageRow
from shared.commands import wait_visible
from shared.projection import ProjectionRunner
from shared.rpc import CallContext
from shared.service import Runtime

# Events published at once (a VEX import may change thousands of findings).
PUBLISH_BATCH = 64


@dataclass(frozen=True)
class Change:
    """One finding.triaged to publish."""

    finding_id: str
    project_id: str
    scan_id: str
    package: str  # <ecosystem>:<key>, as the triage memory names it
    vulnerability_id: str
    triaged: Triaged
    cause: TriageCause
    source: str | None = None

    @classmethod
    def of(cls, row: TriageRow, triaged: Triaged, *, cause: TriageCause) -> Change:
        return cls(
            finding_id=row.id,
            project_id=row.project_id,
            scan_id=row.scan_id,
            package=row.package,
            vulnerability_id=row.vulnerability_id,
            triaged=triaged,
            cause=cause,
        )


@dataclass
class Recorder:
    runtime: Runtime
    runner: ProjectionRunner  # the scans projection: it applies finding.triaged

    async def record(self, changes: Sequence[Change], *, ctx: CallContext) -> None:
        if not changes:
            return
        last = 0
        for start in range(0, len(changes), PUBLISH_BATCH):
            batch = changes[start : start + PUBLISH_BATCH]
            published = await asyncio.gather(*(self._publish(c, ctx=ctx) for c in batch))
            last = max(last, *published)
        await wait_visible(self.runner, last, settings=self.runtime.settings)

    async def _publish(self, change: Change, *, ctx: CallContext) -> int:
        triaged = change.triaged
        _, sequence = await self.runtime.bus.publish(
            FindingTriaged(
                finding_id=change.finding_id,
                project_id=change.project_id,
                scan_id=change.scan_id,
                package=change.package,
                vulnerability_id=change.vulnerability_id,
                from_state=triaged.from_state,
                to_state=triaged.to_state,
                justification=triaged.justification,
                detail=triaged.detail,
                version=triaged.revision,
                cause=change.cause,
                source=change.source,
            ),
            aggregate=f"finding:{change.finding_id}",
            actor=ctx.actor,
            correlation_id=ctx.request_id or None,
        )
        return sequence
