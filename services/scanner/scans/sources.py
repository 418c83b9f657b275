"""What a scan reads besides its upload: the in-memory vulnerability database, advisory
severities, and the license policy. Each is looked up when a scan runs, so the parts that
provide them (``runtime.state["vulndb"]``, ``runtime.state["license_policy"]``) can land
or change independently of scans.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import asyncpg

from services.scanner.domain.advisory_index import AdvisoryIndex
from services.scanner.domain.licenses import LicenseClassifier, LicensePolicy
from services.scanner.domain.model import Component
from services.scanner.domain.severity import Rating
from services.scanner.scans.analysis import EpssScore
from shared.service import Runtime

VULNDB_KEY = "vulndb"
LICENSE_POLICY_KEY = "license_policy"


class VulnDbView(Protocol):
    """The part of the vulnerability database scans use (services.scanner.vulndb)."""

    index: AdvisoryIndex
    epss_as_of: dt.date | None
    version: int

    def epss(self, ids: Iterable[str]) -> Mapping[str, tuple[float, float]]: ...

    async def wait_loaded(self) -> None: ...

    async def wait_for(self, sequence: int, *, timeout: float) -> None: ...  # noqa: ASYNC109


class EmptyVulnDb:
    """No vulnerability database wired: nothing matches (scans still list components)."""

    def __init__(self) -> None:
        self.index = AdvisoryIndex()
        self.epss_as_of: dt.date | None = None
        self.version = 0

    def epss(self, ids: Iterable[str]) -> Mapping[str, tuple[float, float]]:
        return {}

    async def wait_loaded(self) -> None:
        return None

    async def wait_for(self, sequence: int, *, timeout: float) -> None:  # noqa: ASYNC109
        return None


class LicensePolicySource(Protocol):
    async def classifier_for(self, project_id: str) -> LicenseClassifier: ...


class DefaultLicensePolicy:
    """Until a license policy is configured: every license is ``unknown``."""

    async def classifier_for(self, project_id: str) -> LicenseClassifier:
        return LicenseClassifier(LicensePolicy())


def vulndb_of(runtime: Runtime) -> VulnDbView:
    found: Any = runtime.state.get(VULNDB_KEY)
    return found if found is not None else EmptyVulnDb()


def license_policy_of(runtime: Runtime) -> LicensePolicySource:
    found: Any = runtime.state.get(LICENSE_POLICY_KEY)
    return found if found is not None else DefaultLicensePolicy()


def epss_scores(vulndb: VulnDbView, ids: Iterable[str]) -> dict[str, EpssScore]:
    return {
        key: EpssScore(score, percentile) for key, (score, percentile) in vulndb.epss(ids).items()
    }


async def advisory_ratings(
    db: asyncpg.Pool | asyncpg.Connection, ids: Sequence[str]
) -> dict[str, Rating]:
    """Severity of each advisory as the vulnerability database rated it on import."""
    if not ids:
        return {}
    rows = await db.fetch(
        "SELECT id, severity, cvss_score, severity_source, severity_vector "
        "FROM scanner.advisories WHERE id = ANY($1::text[])",
        list(ids),
    )
    return {
        row["id"]: Rating(
            row["severity"],
            row["cvss_score"],
            row["severity_source"],
            row["severity_vector"],
        )
        for row in rows
    }


async def withdrawn_advisories(
    db: asyncpg.Pool | asyncpg.Connection, ids: Sequence[str]
) -> set[str]:
    if not ids:
        return set()
    rows = await db.fetch(
        "SELECT id FROM scanner.advisories WHERE id = ANY($1::text[]) AND withdrawn IS NOT NULL",
        list(ids),
    )
    return {row["id"] for row in rows}


class LicenseVerdicts:
    """Classifies components with one classifier, once per distinct license statement."""

    def __init__(self, classifier: LicenseClassifier, *, now: dt.datetime) -> None:
        self.classifier = classifier
        self.now = now
        self._cache: dict[object, tuple[str, str | None]] = {}
        self._by_purl = bool(classifier.waivers)

    def __call__(self, component: Component) -> tuple[str, str | None]:
        key: object = (component.licenses, component.purl if self._by_purl else None)
        found = self._cache.get(key)
        if found is None:
            verdict = self.classifier.classify(
                component.licenses, purl=component.purl, now=self.now
            )
            found = self._cache[key] = (verdict.category, verdict.expression)
        return found
