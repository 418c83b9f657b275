"""Version-parser candidates per ecosystem: parses per second and correctness on tricky cases.

    .venv/bin/python -m tests.bench.versions_micro [--seconds 0.5]

For every ecosystem, every candidate parses the same list of realistic version strings
(from ../shared/data/osv when present, plus generated shapes) for a fixed time, then orders
the tricky-case table of tests/unit/version_cases.py. ``wrong`` counts neighbouring pairs
ordered differently from the ecosystem's own tool plus equal pairs not equal; a parse
failure counts as wrong. The decision and a copy of the figures live in the docstring of
services/scanner/domain/versions/__init__.py.
"""

from __future__ import annotations

import argparse
import glob
import itertools
import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from services.scanner.domain import versions as ours
from tests.unit.version_cases import ASCENDING, EQUAL

SHARED_OSV = Path(__file__).resolve().parents[3] / "shared" / "data" / "osv"

Candidate = Callable[[str], Any]


def _univers(cls_name: str) -> Candidate:
    from univers import versions as uv

    cls = getattr(uv, cls_name)
    return lambda s: cls(s)


def _python_semver(s: str) -> Any:
    import semver

    return semver.Version.parse(s)


def _packaging_only(s: str) -> Any:
    from packaging.version import Version

    return Version(s)


CANDIDATES: dict[str, list[tuple[str, Candidate]]] = {
    "PyPI": [
        ("ours: packaging + legacy", ours.pypi_key),
        ("packaging.Version only", _packaging_only),
        ("univers PypiVersion", _univers("PypiVersion")),
    ],
    "npm": [
        ("ours: regex -> tuple", ours.npm_key),
        ("python-semver 3", _python_semver),
        ("univers SemverVersion", _univers("SemverVersion")),
    ],
    "Go": [
        ("ours: regex -> tuple", ours.go_key),
        ("python-semver 3", _python_semver),
        ("univers GolangVersion", _univers("GolangVersion")),
    ],
    "crates.io": [
        ("ours: regex -> tuple", ours.crates_key),
        ("python-semver 3", _python_semver),
        ("univers SemverVersion", _univers("SemverVersion")),
    ],
    "Maven": [
        ("ours: spec tokens -> tuple", ours.maven_key),
        ("univers MavenVersion", _univers("MavenVersion")),
    ],
    "RubyGems": [
        ("ours: Gem::Version -> tuple", ours.rubygems_key),
        ("univers RubygemsVersion", _univers("RubygemsVersion")),
    ],
    "Packagist": [
        ("ours: Composer + PHP order", ours.packagist_key),
        ("univers ComposerVersion", _univers("ComposerVersion")),
    ],
    "NuGet": [
        ("ours: regex -> tuple", ours.nuget_key),
        ("univers NugetVersion", _univers("NugetVersion")),
    ],
}


def _from_osv(ecosystem: str) -> list[str]:
    found: list[str] = []
    for path in sorted(glob.glob(str(SHARED_OSV / ecosystem / "*.json")))[:2000]:
        doc = json.loads(Path(path).read_text())
        for affected in doc.get("affected", []):
            found.extend(affected.get("versions", []))
            for rng in affected.get("ranges", []):
                if rng.get("type") != "GIT":
                    for event in rng.get("events", []):
                        found.extend(v for v in event.values() if v != "0")
    return found


def sample_versions(ecosystem: str, n: int = 5000) -> list[str]:
    rng = random.Random(7)
    data = {"PyPI": _from_osv("PyPI"), "Go": ["v" + v for v in _from_osv("Go")]}.get(ecosystem)
    if data:
        return [rng.choice(data) for _ in range(n)]
    shapes: dict[str, list[str]] = {
        "npm": ["{a}.{b}.{c}", "{a}.{b}.{c}-beta.{d}", "{a}.{b}.{c}-rc.{d}"],
        "crates.io": ["{a}.{b}.{c}", "{a}.{b}.{c}-alpha.{d}"],
        "Maven": [
            "{a}.{b}.{c}",
            "{a}.{b}.{c}-SNAPSHOT",
            "{a}.{b}.{c}.RELEASE",
            "{a}.{b}.{c}.Final",
            "{a}.{b}-jre",
            "{a}.{b}.{c}-M{d}",
        ],
        "RubyGems": ["{a}.{b}.{c}", "{a}.{b}.{c}.rc{d}", "{a}.{b}.{c}.{d}"],
        "Packagist": ["{a}.{b}.{c}", "v{a}.{b}.{c}", "{a}.{b}.{c}-beta{d}"],
        "NuGet": ["{a}.{b}.{c}", "{a}.{b}.{c}.{d}", "{a}.{b}.{c}-preview.{d}"],
    }
    out = []
    for _ in range(n):
        shape = rng.choice(shapes[ecosystem])
        out.append(
            shape.format(
                a=rng.randint(0, 30),
                b=rng.randint(0, 30),
                c=rng.randint(0, 60),
                d=rng.randint(1, 12),
            )
        )
    return out


def parses_per_second(parse: Candidate, sample: list[str], seconds: float) -> float:
    """Parse and compare once with a fixed version: some candidates parse lazily on compare."""
    reference = None
    for version in sample:
        try:
            reference = parse(version)
            break
        except Exception:  # look for one the candidate accepts
            continue
    if reference is None:
        return 0.0
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for version in sample:
            try:
                _ = parse(version) < reference
            except Exception:  # a refusal still costs a parse
                pass
        done += len(sample)
    return done / (time.perf_counter() - started)


def wrong_on_cases(parse: Candidate, ecosystem: str) -> tuple[int, int]:
    wrong = total = 0
    for chain in ASCENDING.get(ecosystem, []):
        for a, b in itertools.pairwise(chain):
            total += 1
            try:
                wrong += not parse(a) < parse(b)
            except Exception:
                wrong += 1
    for a, b in EQUAL.get(ecosystem, []):
        total += 1
        try:
            wrong += not parse(a) == parse(b)
        except Exception:
            wrong += 1
    return wrong, total


def main() -> None:
    args = argparse.ArgumentParser()
    args.add_argument("--seconds", type=float, default=0.5)
    opts = args.parse_args()
    print(f"{'ecosystem':<10} {'candidate':<30} {'parse+cmp/s':>11} {'wrong/cases':>12}")
    for ecosystem, candidates in CANDIDATES.items():
        sample = sample_versions(ecosystem, 2000)
        for name, parse in candidates:
            rate = parses_per_second(parse, sample, opts.seconds)
            wrong, total = wrong_on_cases(parse, ecosystem)
            print(f"{ecosystem:<10} {name:<30} {rate:>11,.0f} {wrong:>5}/{total:<6}")


if __name__ == "__main__":
    main()
