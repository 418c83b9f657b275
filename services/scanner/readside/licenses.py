"""A snapshot's licenses: each expression in each category, with its component count and
whether waivers made it allowed.

Categories are the snapshot's own (``components.license_category``: what the gate and the
filters use). Reasons and waivers come from classifying the components again with the
policy the snapshot was evaluated with (the versions recorded by the licensing projection),
so they explain those categories rather than today's policy.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from contracts.rpc.scanner_licensing import LicenseUsage
from services.scanner.domain.licenses import RANK, LicenseClassifier, LicenseVerdict
from services.scanner.domain.model import License

# Most restrictive first.
_ORDER: dict[str, int] = {category: -rank for category, rank in RANK.items()}


@dataclass
class _Group:
    expression: str | None
    category: str
    count: int = 0
    waived: int = 0
    waivers: set[str] = field(default_factory=set)
    unknown: dict[str, None] = field(default_factory=dict)
    reason: str = ""
    reason_matches: bool = False


def summarize(
    rows: Iterable[Mapping[str, Any]], classifier: LicenseClassifier, *, now: dt.datetime
) -> list[LicenseUsage]:
    """One entry per (expression, category) of component rows (``licenses`` as JSON,
    ``purl``, ``license_expression``, ``license_category``), most restrictive first, then
    by expression (none declared last)."""
    by_purl = any(w.purl for w in classifier.waivers)
    verdicts: dict[tuple[str, str | None], LicenseVerdict] = {}
    groups: dict[tuple[str | None, str], _Group] = {}
    for row in rows:
        key = (msgspec.json.encode(row["licenses"]).decode(), row["purl"] if by_purl else None)
        verdict = verdicts.get(key)
        if verdict is None:
            licenses = msgspec.convert(row["licenses"] or [], tuple[License, ...])
            verdict = verdicts[key] = classifier.classify(licenses, purl=row["purl"], now=now)
        expression, category = row["license_expression"], row["license_category"]
        group = groups.get((expression, category))
        if group is None:
            group = groups[(expression, category)] = _Group(expression, category)
        group.count += 1
        group.unknown.update(dict.fromkeys(verdict.unknown))
        if verdict.waived_by and verdict.category == category:
            group.waived += 1
            group.waivers.update(verdict.waived_by)
        # Explain with a verdict that reached the recorded category when there is one.
        if not group.reason or (not group.reason_matches and verdict.category == category):
            group.reason, group.reason_matches = verdict.reason, verdict.category == category
    ordered = sorted(groups.values(), key=lambda g: sort_key(g.category, g.expression))
    return [
        LicenseUsage(
            license=g.expression,
            category=g.category,  # type: ignore[arg-type]
            component_count=g.count,
            waived=g.waived > 0,
            waived_count=g.waived,
            waiver_ids=sorted(g.waivers),
            unknown=list(g.unknown),
            reason=g.reason,
        )
        for g in ordered
    ]


def sort_key(category: str, expression: str | None) -> tuple[int, int, str, str]:
    text = expression or ""
    return (_ORDER.get(category, 0), 1 if expression is None else 0, text.casefold(), text)


def page(
    usages: list[LicenseUsage], *, after: tuple[Any, ...] | None, limit: int
) -> tuple[list[LicenseUsage], tuple[int, int, str, str] | None]:
    """Keyset page over ``usages`` (sorted by ``sort_key``); the cursor key of the last row
    when there are more."""

    rest = [u for u in usages if after is None or sort_key(u.category, u.license) > tuple(after)]
    shown = rest[:limit]
    more = len(rest) > limit and shown
    return shown, sort_key(shown[-1].category, shown[-1].license) if more else None
