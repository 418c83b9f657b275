"""Metrics of the audit service, declared once."""

from __future__ import annotations

from prometheus_client import Counter

DUPLICATES_SKIPPED = Counter(
    "gatehouse_audit_duplicate_events_total",
    "Events not recorded again because their id is already in the audit log",
)
