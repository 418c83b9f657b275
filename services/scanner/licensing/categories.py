"""A re-evaluation's result blob, and how the scans projection applies ``scan.relicensed``.

The blob lists every component of the snapshot with its category (sorted by ref, nothing
else in it), so the same categories give the same digest, and applying it sets the rows to
exactly those categories whatever they were: replay and repeats agree. The scans
projection applies it (it owns ``components`` and sees ``scan.completed`` and
``scan.relicensed`` in stream order); the licensing projection records the policy version.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import asyncpg
import msgspec

from contracts.events.licensing import ScanRelicensed
from services.scanner.scans import store as scans_store
from services.scanner.scans.analysis import LICENSE_RANK
from shared.blobs import BlobStore
from shared.errors import PermanentEventError

RELICENSE_FORMAT = 1


class RelicenseResult(msgspec.Struct, frozen=True, kw_only=True):
    format_version: int = RELICENSE_FORMAT
    scan_id: str
    refs: list[str]
    categories: list[str]


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(RelicenseResult)


def encode_relicense(scan_id: str, categories: Iterable[tuple[str, str]]) -> bytes:
    ordered = sorted(categories)
    return _encoder.encode(
        RelicenseResult(
            scan_id=scan_id,
            refs=[ref for ref, _ in ordered],
            categories=[category for _, category in ordered],
        )
    )


def decode_relicense(data: bytes) -> RelicenseResult:
    result = _decoder.decode(data)
    if len(result.refs) != len(result.categories):
        raise ValueError("refs and categories differ in length")
    return result


async def apply_relicensed(
    conn: asyncpg.Connection,
    blobs: BlobStore,
    payload: ScanRelicensed,
    *,
    at: dt.datetime,
    sequence: int,
    event_type: str,
) -> None:
    """Set the snapshot's component categories from the blob (scans projection)."""
    if payload.result_digest is None:
        return
    if await scans_store.scan_status(conn, payload.scan_id) != ("succeeded", False):
        return  # deleted meanwhile: nothing to set
    try:
        result = decode_relicense(await blobs.get(payload.result_digest))
    except (msgspec.DecodeError, ValueError) as exc:
        raise PermanentEventError(f"relicense blob {payload.result_digest}: {exc}") from exc
    if result.scan_id != payload.scan_id:
        raise PermanentEventError(
            f"relicense blob {payload.result_digest} belongs to scan {result.scan_id}"
        )
    changed = await conn.fetchval(
        "WITH changed AS (UPDATE scanner.components c SET license_category = t.category, "
        "license_rank = t.rank FROM unnest($2::text[], $3::text[], $4::smallint[]) "
        "AS t(ref, category, rank) WHERE c.scan_id = $1 AND c.ref = t.ref "
        "AND c.license_category IS DISTINCT FROM t.category RETURNING 1) "
        "SELECT count(*) FROM changed",
        payload.scan_id,
        result.refs,
        result.categories,
        [LICENSE_RANK.get(category, 1) for category in result.categories],
    )
    counts = payload.counts
    await scans_store.log_line(
        conn,
        payload.scan_id,
        sequence=sequence,
        at=at,
        event=event_type,
        stage="evaluate",
        message=f"licenses evaluated again ({payload.cause.replace('_', ' ')}): {changed} "
        f"changed category; {counts.forbidden} forbidden, {counts.conditional} conditional, "
        f"{counts.unknown} unknown, {counts.allowed} allowed",
    )
