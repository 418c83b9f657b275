"""The audit log as CSV (RFC 4180), pure.

Cells that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, a
tab or a carriage return) are prefixed with ``'`` (OWASP's advice against CSV injection);
the ``event`` column, the whole canonical JSON, always starts with ``{`` and is never
touched, so the exact hashed bytes can still be checked from an export.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable

from contracts.rpc.audit import AuditEntry

COLUMNS = (
    "sequence",
    "event_id",
    "occurred_at",
    "type",
    "aggregate",
    "actor",
    "source",
    "correlation_id",
    "causation_id",
    "prev_hash",
    "hash",
    "event",
)
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def rfc3339(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _cells(entry: AuditEntry) -> list[str]:
    texts = [
        entry.event_id,
        rfc3339(entry.occurred_at),
        entry.type,
        entry.aggregate,
        entry.actor,
        entry.source,
        entry.correlation_id or "",
        entry.causation_id or "",
        entry.prev_hash,
        entry.hash,
    ]
    event = bytes(entry.event).decode("utf-8")
    return [str(entry.sequence), *(spreadsheet_safe(text) for text in texts), event]


def csv_text(entries: Iterable[AuditEntry], *, header: bool = False) -> str:
    """CSV lines (CRLF-terminated) for ``entries``, with the header line first if asked."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if header:
        writer.writerow(COLUMNS)
    for entry in entries:
        writer.writerow(_cells(entry))
    return out.getvalue()
