"""An advisory's severity: CVSS base score bands, else the database's own word, else UNKNOWN.

Order of preference: a CVSS v3.x vector (most advisories carry one, and gate thresholds are
written against it), then CVSS v4, then ``database_specific.severity`` (GHSA's
``CRITICAL/HIGH/MODERATE/LOW``; MODERATE is MEDIUM), then CVSS v2 (bands without CRITICAL),
then UNKNOWN. Top-level ``severity`` is read before the per-package ``affected[].severity``;
within one type the highest score wins. A vector the ``cvss`` package refuses is skipped,
never guessed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

import msgspec
from cvss import CVSS2, CVSS3, CVSS4
from cvss.exceptions import CVSSError

from .osv import Advisory, Severity

Level = Literal["CRITICAL", "HIGH", "MEDIUM", "LOW", "NONE", "UNKNOWN"]
LEVELS: tuple[Level, ...] = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "NONE", "UNKNOWN")


class Rating(msgspec.Struct, frozen=True, omit_defaults=True):
    level: Level
    score: float | None = None
    source: str | None = None  # CVSS_V3, CVSS_V4, CVSS_V2 or database_specific
    vector: str | None = None


UNKNOWN = Rating("UNKNOWN")
_WORDS: dict[str, Level] = {
    "CRITICAL": "CRITICAL",
    "HIGH": "HIGH",
    "MODERATE": "MEDIUM",
    "MEDIUM": "MEDIUM",
    "LOW": "LOW",
    "NONE": "NONE",
}


def band(score: float) -> Level:
    """CVSS v3/v4 qualitative rating: 9.0+ critical, 7.0+ high, 4.0+ medium, 0.1+ low."""
    if score >= 9.0:
        return "CRITICAL"
    if score >= 7.0:
        return "HIGH"
    if score >= 4.0:
        return "MEDIUM"
    if score > 0.0:
        return "LOW"
    return "NONE"


def _band_v2(score: float) -> Level:
    return "HIGH" if score >= 7.0 else "MEDIUM" if score >= 4.0 else "LOW"


def cvss_score(kind: str, vector: str) -> float | None:
    """The base score of a vector, or None when the vector is not valid for ``kind``."""
    try:
        if kind == "CVSS_V3":
            return float(CVSS3(vector).base_score)
        if kind == "CVSS_V4":
            return float(CVSS4(vector).base_score)
        if kind == "CVSS_V2":
            return float(CVSS2(vector).base_score)
    except (CVSSError, ValueError, KeyError, IndexError, AttributeError):
        return None
    return None


def _best(kind: str, entries: Iterable[Severity]) -> Rating | None:
    best: Rating | None = None
    for entry in entries:
        if entry.type != kind:
            continue
        score = cvss_score(kind, entry.score.strip())
        if score is None:
            continue
        level = _band_v2(score) if kind == "CVSS_V2" else band(score)
        if best is None or (best.score is not None and score > best.score):
            best = Rating(level, score, kind, entry.score.strip())
    return best


def rate(severities: Iterable[Severity], database_specific: dict[str, Any] | None = None) -> Rating:
    """Pure rating from severity entries and a ``database_specific`` object."""
    entries = list(severities)
    for kind in ("CVSS_V3", "CVSS_V4"):
        found = _best(kind, entries)
        if found is not None:
            return found
    word = (database_specific or {}).get("severity")
    if isinstance(word, str) and word.strip().upper() in _WORDS:
        return Rating(_WORDS[word.strip().upper()], source="database_specific")
    found = _best("CVSS_V2", entries)
    return found if found is not None else UNKNOWN


def advisory_severity(advisory: Advisory) -> Rating:
    """The advisory's rating over its top-level and per-package severity entries."""
    entries = list(advisory.severity)
    for affected in advisory.affected:
        entries.extend(affected.severity)
    return rate(entries, advisory.database_specific)


def _rank(rating: Rating) -> tuple[int, float]:
    return len(LEVELS) - LEVELS.index(rating.level), rating.score or -1.0


def effective_rating(own: Rating, aliases: Mapping[str, Rating]) -> Rating:
    """An advisory's severity: its own rating, or — when it has none (most PyPA and Go
    advisories carry no CVSS) — the highest rating among its aliases held in the database
    (``aliases``: alias id -> that record's own rating; a GHSA or CVE record usually carries
    CVSS), its ``source`` naming the alias (``alias:CVE-…``). An alias rated ``UNKNOWN``
    itself adds nothing; ties go to the lowest id, so the answer does not depend on order.
    """
    if own.level != "UNKNOWN":
        return own
    best: tuple[str, Rating] | None = None
    for alias_id in sorted(aliases):
        rating = aliases[alias_id]
        if rating.level == "UNKNOWN" or (rating.source or "").startswith("alias:"):
            continue
        if best is None or _rank(rating) > _rank(best[1]):
            best = (alias_id, rating)
    if best is None:
        return own
    alias_id, rating = best
    return Rating(rating.level, rating.score, f"alias:{alias_id}", rating.vector)
