"""The ``relicense`` job: evaluate one snapshot's licenses again with the policy in force.

The worker claims a job only once the licensing *and* the scans projections have caught up
with the stream, so the snapshot's rows and the policy it reads are current. It classifies
every component (its license statements and purl, from the ``components`` rows) with the
org policy merged with the project's override and the project's waivers active now, stores
the categories as a blob (``categories.encode_relicense``: same categories, same digest) and
publishes ``scan.relicensed``, whose id is derived from the job, so a re-run after a crash
publishes the same event (JetStream drops the repeat). A snapshot deleted meanwhile is left
alone (``scan.deleted`` finished its jobs).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec

from contracts.events.licensing import LicenseCounts, RelicenseCause, ScanRelicensed
from services.scanner.domain.licenses import LicenseClassifier
from services.scanner.domain.model import License
from services.scanner.licensing import store
from services.scanner.licensing.categories import encode_relicense
from services.scanner.scans.ids import job_event_id
from shared import jobs
from shared.blobs import BlobStore
from shared.bus import Bus
from shared.logging import get_logger

log = get_logger(__name__)
SYSTEM = "system"


def classify_rows(
    rows: list[dict[str, Any]], classifier: LicenseClassifier, *, now: dt.datetime
) -> list[tuple[str, str]]:
    """(ref, category) per component row (``ref``, ``licenses`` as JSON, ``purl``); one
    classification per distinct statement (and purl, when waivers can be purl-scoped)."""
    by_purl = any(w.purl for w in classifier.waivers)
    cache: dict[tuple[str, str | None], str] = {}
    result = []
    for row in rows:
        key = (msgspec.json.encode(row["licenses"]).decode(), row["purl"] if by_purl else None)
        category = cache.get(key)
        if category is None:
            licenses = msgspec.convert(row["licenses"] or [], tuple[License, ...])
            verdict = classifier.classify(licenses, purl=row["purl"], now=now)
            category = cache[key] = verdict.category
        result.append((row["ref"], category))
    return result


@dataclass
class RelicenseWorker:
    pool: asyncpg.Pool
    bus: Bus
    blobs: BlobStore

    async def run(self, job: jobs.Job) -> None:
        scan_id, project_id = str(job.payload["scan_id"]), str(job.payload["project_id"])
        cause: RelicenseCause = job.payload["cause"]
        scan = await store.license_scan(self.pool, scan_id)
        if scan is None or scan.deleted or scan.completed_seq is None:
            return
        now = dt.datetime.now(dt.UTC)
        context = await store.current_context(self.pool, project_id, now=now)
        rows = [
            dict(row)
            for row in await self.pool.fetch(
                "SELECT ref, licenses, purl, license_category FROM scanner.components "
                "WHERE scan_id = $1",
                scan_id,
            )
        ]
        if not rows and await self._deleted(scan_id):
            return
        categories = await asyncio.to_thread(classify_rows, rows, context.classifier(), now=now)
        before = {row["ref"]: row["license_category"] for row in rows}
        counts = Counter(category for _, category in categories)
        digest = await self.blobs.put(encode_relicense(scan_id, categories))
        await self.bus.publish(
            ScanRelicensed(
                scan_id=scan_id,
                project_id=project_id,
                job_id=job.id,
                cause=cause,
                result_digest=digest,
                org_policy_version=context.org_version,
                project_policy_version=context.project_version,
                project_override=context.project_override,
                waiver_ids=context.waiver_ids,
                evaluated_at=now,
                component_count=len(categories),
                counts=LicenseCounts(
                    allowed=counts["allowed"],
                    conditional=counts["conditional"],
                    unknown=counts["unknown"],
                    forbidden=counts["forbidden"],
                ),
                forbidden_license_count=counts["forbidden"],
                changed_count=sum(1 for ref, category in categories if before[ref] != category),
            ),
            aggregate=f"scan:{scan_id}",
            actor=SYSTEM,
            event_id=job_event_id(job.id, "relicensed"),
        )
        log.info(
            "scan_relicensed",
            scan_id=scan_id,
            cause=cause,
            components=len(categories),
            forbidden=counts["forbidden"],
        )

    async def give_up(self, job: jobs.Job) -> None:
        """The job kept failing: say so (this finishes it; the categories stay as they were)."""
        await self.bus.publish(
            ScanRelicensed(
                scan_id=str(job.payload["scan_id"]),
                project_id=str(job.payload["project_id"]),
                job_id=job.id,
                cause=job.payload["cause"],
                evaluated_at=dt.datetime.now(dt.UTC),
                given_up=True,
            ),
            aggregate=f"scan:{job.payload['scan_id']}",
            actor=SYSTEM,
            event_id=job_event_id(job.id, "given-up"),
        )

    async def _deleted(self, scan_id: str) -> bool:
        found = await self.pool.fetchval(
            "SELECT deleted_at IS NOT NULL FROM scanner.scans WHERE id = $1", scan_id
        )
        return found is None or bool(found)
