"""The real OSV data in ../shared/data/osv: the PyPI oracle and a Go sanity pass.

Oracle: for every PyPI advisory, each enumerated version must be affected by the ranges
alone (the ``versions`` list removed), and every version enumerated by *other* advisories of
the same package but not by this one must not be. The data is not perfectly consistent with
the spec's evaluation algorithm; the exceptions are listed below one by one, with why.
"""

from __future__ import annotations

import collections
from functools import cache
from pathlib import Path

import msgspec
import pytest

from services.scanner.domain.advisory_index import AdvisoryIndex
from services.scanner.domain.model import Component
from services.scanner.domain.osv import Advisory, Affected, decode_advisory, range_problems
from services.scanner.domain.osv_match import compile_affected
from services.scanner.domain.versions import pypi_key
from tests.conftest import shared_data

pytestmark = pytest.mark.data

# Listed versions the ranges do not make affected.
KNOWN_MISSES = {
    # Overlapping ranges in one events array (introduced 2.11 / fixed 2.11.7 beside
    # introduced 0 / fixed 2.11.6): the spec sorts all events, so fixed 2.11.6 fires last for
    # 2.11.6; the list was made pairwise ([2.11, 2.11.7) includes it).
    "PYSEC-2021-114": {"2.11.6"},
    # The list carries 23.9.0 and 23.9.0.post1 from the GIT range, while the ECOSYSTEM range
    # says fixed in 23.9.0 (ranges alone: the GIT range is "not evaluated").
    "PYSEC-2023-177": {"23.9.0", "23.9.0.post1"},
}

# Versions outside the list that the ranges make affected.
_TENSORFLOW_PRE_RELEASES_LEFT_OUT = 50  # every rc/alpha/beta below 2.4.4 is omitted
KNOWN_EXTRAS: dict[str, set[str] | int] = {
    **dict.fromkeys(
        [
            "PYSEC-2021-392",
            "PYSEC-2021-394",
            "PYSEC-2021-396",
            "PYSEC-2021-399",
            "PYSEC-2021-406",
            "PYSEC-2021-409",
            "PYSEC-2021-410",
            "PYSEC-2021-416",
            "PYSEC-2021-417",
            "PYSEC-2021-419",
            "PYSEC-2021-420",
        ],
        _TENSORFLOW_PRE_RELEASES_LEFT_OUT,
    ),
    # introduced 0, no fix: the list leaves out the 2.0.0 pre-releases.
    "PYSEC-2022-43063": {"2.0.0rc0", "2.0.0rc1"},
    # introduced 0, no fix: the list predates releases 1.1.2, 1.2.0 and 1.2.1.
    "PYSEC-2023-8": {"1.1.2", "1.2.0", "1.2.1"},
    # fixed 2.6.1: the list predates the 1.8.3 backport release.
    "PYSEC-2022-159": {"1.8.3"},
}


@cache
def _load(ecosystem: str) -> tuple[Advisory, ...]:
    folder: Path = shared_data("osv", ecosystem)
    return tuple(decode_advisory(p.read_bytes()) for p in sorted(folder.glob("*.json")))


def _ranges_only(affected: Affected) -> Affected:
    return msgspec.structs.replace(affected, versions=())


def test_pypi_oracle_enumerated_versions_match_and_others_do_not() -> None:
    advisories = [a for a in _load("PyPI") if a.withdrawn is None]
    listed_by_package: dict[str, set[str]] = collections.defaultdict(set)
    for adv in advisories:
        for affected in adv.affected:
            assert affected.package is not None
            listed_by_package[affected.package.name].update(affected.versions)

    misses: dict[str, set[str]] = collections.defaultdict(set)
    extras: dict[str, set[str]] = collections.defaultdict(set)
    checked = 0
    for adv in advisories:
        for affected in adv.affected:
            assert affected.package is not None
            if not affected.versions or not affected.ranges:
                continue  # nothing to compare: no list, or the list is the only statement
            compiled = compile_affected(_ranges_only(affected))
            for version in affected.versions:
                checked += 1
                if compiled.verdict(version, {}).status != "affected":
                    misses[adv.id].add(version)
            listed = {pypi_key(v) for v in affected.versions}
            for version in listed_by_package[affected.package.name]:
                if pypi_key(version) in listed:
                    continue
                checked += 1
                if compiled.verdict(version, {}).status == "affected":
                    extras[adv.id].add(version)

    assert checked > 50_000
    assert dict(misses) == KNOWN_MISSES
    assert set(extras) == set(KNOWN_EXTRAS)
    for advisory_id, expected in KNOWN_EXTRAS.items():
        if isinstance(expected, int):
            assert len(extras[advisory_id]) == expected
            assert all(pypi_key(v)[1].is_prerelease for v in extras[advisory_id])
        else:
            assert extras[advisory_id] == expected, advisory_id


def test_pypi_and_go_advisories_decode_without_range_problems() -> None:
    for ecosystem in ("PyPI", "Go"):
        advisories = _load(ecosystem)
        assert advisories
        assert [(a.id, range_problems(a)) for a in advisories if range_problems(a)] == []


def test_go_ranges_evaluate_at_their_own_boundaries() -> None:
    """Every Go range compiles; each ``introduced`` version is affected and each ``fixed`` one
    is not (module versions with their ``v``, as go.mod spells them)."""
    wrong = []
    evaluated = 0
    for adv in _load("Go"):
        for affected in adv.affected:
            assert affected.package is not None
            compiled = compile_affected(affected)
            assert compiled.gaps == (), (adv.id, compiled.gaps)
            prefix = "" if affected.package.name in ("stdlib", "toolchain") else "v"
            for rng in affected.ranges:
                for event in rng.events:
                    for kind, version in event.kinds():
                        if kind not in ("introduced", "fixed") or version == "0":
                            continue
                        evaluated += 1
                        status = compiled.verdict(prefix + version, {}).status
                        if status != ("affected" if kind == "introduced" else "not_affected"):
                            wrong.append((adv.id, kind, version, status))
    assert evaluated > 3000
    assert wrong == []


def test_go_stdlib_matches_go_release_tags_through_the_index() -> None:
    index = AdvisoryIndex()
    index.upsert_many(_load("Go"))
    old = Component(ref="go", name="stdlib", version="go1.20.1", purl="pkg:golang/stdlib@go1.20.1")
    new = Component(ref="go", name="stdlib", version="go1.99.0", purl="pkg:golang/stdlib@go1.99.0")
    old_matches = index.match([old])
    assert len(old_matches) > 20
    assert all(m.verdict.status == "affected" for m in old_matches)
    # GO ids alias CVE (and GHSA) ids: each weakness is reported once, under its CVE.
    assert all(m.group_id.startswith("CVE-") for m in old_matches if len(m.advisory_ids) == 1)
    assert index.match([new]) == []
