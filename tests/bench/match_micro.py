"""AdvisoryIndex micro-benchmark: load >= 100k advisories, match 10k components.

    .venv/bin/python -m tests.bench.match_micro [--advisories 100000] [--components 10000]

The real PyPI and Go advisories from ../shared/data/osv (when present) are topped up with
synthetic ones (PyPI, npm, Go, Maven; 1-3 ranges, CVE/GHSA aliases) to the requested size.
Components are purls: half name a package that has advisories (at a random version), half
do not. Prints load time, cold match (compiles the packages it touches), warm match, alias
grouping time and the RSS growth of the loaded index.
"""

from __future__ import annotations

import argparse
import glob
import random
import resource
import time
from datetime import UTC, datetime
from pathlib import Path

from services.scanner.domain.advisory_index import AdvisoryIndex
from services.scanner.domain.model import Component
from services.scanner.domain.osv import Advisory, Affected, Event, Package, Range, decode_advisory

SHARED_OSV = Path(__file__).resolve().parents[3] / "shared" / "data" / "osv"
PURL_TYPE = {"PyPI": "pypi", "npm": "npm", "Go": "golang", "Maven": "maven"}


def _name(ecosystem: str, i: int) -> str:
    if ecosystem == "Maven":
        return f"org.example{i % 97}:artifact-{i}"
    if ecosystem == "Go":
        return f"github.com/example{i % 89}/module-{i}"
    return f"package-{i}"


def _version(rng: random.Random, ecosystem: str) -> str:
    v = f"{rng.randint(0, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 30)}"
    return "v" + v if ecosystem == "Go" else v


def synthetic(n: int, packages: int, seed: int = 11) -> list[Advisory]:
    rng = random.Random(seed)
    now = datetime(2024, 1, 1, tzinfo=UTC)
    out = []
    for i in range(n):
        ecosystem = rng.choice(("PyPI", "npm", "Go", "Maven"))
        pkg = rng.randrange(packages)
        ranges = []
        for _ in range(rng.randint(1, 3)):
            lo = sorted(_version(rng, ecosystem).lstrip("v") for _ in range(2))
            events = (Event(introduced=rng.choice(["0", lo[0]])), Event(fixed=lo[1]))
            kind = "SEMVER" if ecosystem in ("npm", "Go") else "ECOSYSTEM"
            ranges.append(Range(type=kind, events=events))
        cve = f"CVE-{2015 + i % 10}-{100000 + i // 2}"  # pairs of advisories share a CVE
        out.append(
            Advisory(
                id=f"SYN-{i:06d}",
                modified=now,
                aliases=(cve,),
                affected=(
                    Affected(
                        package=Package(ecosystem=ecosystem, name=_name(ecosystem, pkg)),
                        ranges=tuple(ranges),
                    ),
                ),
            )
        )
    return out


def real() -> list[Advisory]:
    files = sorted(glob.glob(str(SHARED_OSV / "*" / "*.json")))
    return [decode_advisory(Path(f).read_bytes()) for f in files]


def components(n: int, packages: int, seed: int = 5) -> list[Component]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ecosystem = rng.choice(("PyPI", "npm", "Go", "Maven"))
        pkg = rng.randrange(packages) if i % 2 == 0 else packages + i  # half miss
        name = _name(ecosystem, pkg)
        if ecosystem == "Maven":
            group, artifact = name.split(":")
            purl_name = f"{group}/{artifact}"
        else:
            purl_name = name
        version = _version(rng, ecosystem)
        purl = f"pkg:{PURL_TYPE[ecosystem]}/{purl_name}@{version}"
        out.append(Component(ref=f"c{i}", name=name, version=version, purl=purl))
    return out


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    args = argparse.ArgumentParser()
    args.add_argument("--advisories", type=int, default=100_000)
    args.add_argument("--components", type=int, default=10_000)
    opts = args.parse_args()
    packages = opts.advisories // 3

    real_advisories = real()
    advisories = real_advisories + synthetic(opts.advisories, packages)
    comps = components(opts.components, packages)
    base_rss = rss_mb()

    index = AdvisoryIndex()
    t0 = time.perf_counter()
    index.upsert_many(advisories)
    load = time.perf_counter() - t0
    t0 = time.perf_counter()
    index.group_of("SYN-000000")
    grouping = time.perf_counter() - t0
    t0 = time.perf_counter()
    cold = index.match(comps)
    match_cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    warm = index.match(comps)
    match_warm = time.perf_counter() - t0
    assert warm == cold

    affected = sum(m.verdict.status == "affected" for m in cold)
    print(f"advisories loaded     {len(index):>10,} ({len(real_advisories):,} real)")
    print(f"components            {len(comps):>10,}")
    print(f"load (upsert all)     {load:>10.3f} s")
    print(f"alias grouping        {grouping:>10.3f} s")
    print(f"match, cold           {match_cold:>10.3f} s  (compiles touched packages)")
    print(f"match, warm           {match_warm:>10.3f} s")
    print(f"matches               {len(cold):>10,} ({affected:,} affected)")
    print(f"RSS growth (max RSS)  {rss_mb() - base_rss:>10.0f} MB")


if __name__ == "__main__":
    main()
