"""Synthetic OSV advisories, as JSON documents and as an import zip, for benchmarks.

    .venv/bin/python -m tests.bench.synthetic_osv --count 100000 --out /tmp/osv-100k.zip

Deterministic for a seed. Advisories spread over PyPI, npm, Go and Maven packages
(``package_name(ecosystem, i)``, about three advisories per package), with 1-3
SEMVER/ECOSYSTEM ranges each, a CVE alias shared by pairs of advisories and a CVSS v3
vector on most. ``component_purl`` names a package the way an SBOM would, so a bench can
build components that hit (or miss) the generated advisories.
"""

from __future__ import annotations

import argparse
import io
import random
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

ECOSYSTEMS = ("PyPI", "npm", "Go", "Maven")
PURL_TYPES = {"PyPI": "pypi", "npm": "npm", "Go": "golang", "Maven": "maven"}
MODIFIED = datetime(2024, 1, 1, tzinfo=UTC)
_VECTORS = (
    "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",  # 9.8
    "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N",  # 7.5
    "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:L/A:N",  # 4.2
    "CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N",  # 1.8
)


def package_name(ecosystem: str, i: int) -> str:
    if ecosystem == "Maven":
        return f"org.example{i % 97}:artifact-{i}"
    if ecosystem == "Go":
        return f"github.com/example{i % 89}/module-{i}"
    return f"package-{i}"


def component_purl(ecosystem: str, i: int, version: str) -> str:
    name = package_name(ecosystem, i)
    if ecosystem == "Maven":
        group, artifact = name.split(":")
        name = f"{group}/{artifact}"
    if ecosystem == "Go" and not version.startswith("v"):
        version = "v" + version
    return f"pkg:{PURL_TYPES[ecosystem]}/{name}@{version}"


def _version(rng: random.Random) -> str:
    return f"{rng.randint(0, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 30)}"


def advisory(
    i: int, rng: random.Random, *, packages: int, prefix: str = "SYN", modified: datetime = MODIFIED
) -> dict[str, Any]:
    """The ``i``-th synthetic advisory as an OSV JSON object."""
    ecosystem = ECOSYSTEMS[rng.randrange(len(ECOSYSTEMS))]
    package = rng.randrange(packages)
    ranges = []
    for _ in range(rng.randint(1, 3)):
        low, high = sorted(_version(rng) for _ in range(2))
        if ecosystem == "Go":
            low, high = "v" + low, "v" + high
        introduced = rng.choice(["0", low])
        ranges.append(
            {
                "type": "SEMVER" if ecosystem in ("npm", "Go") else "ECOSYSTEM",
                "events": [{"introduced": introduced}, {"fixed": high}],
            }
        )
    doc: dict[str, Any] = {
        "schema_version": "1.6.0",
        "id": f"{prefix}-{i:07d}",
        "modified": modified.isoformat().replace("+00:00", "Z"),
        "published": (modified - timedelta(days=30)).isoformat().replace("+00:00", "Z"),
        # Pairs of advisories share a CVE: alias groups of two.
        "aliases": [f"CVE-{2015 + (i // 2) % 10}-{100000 + i // 2}"],
        "summary": f"Synthetic weakness {i} in {package_name(ecosystem, package)}",
        "affected": [
            {
                "package": {"ecosystem": ecosystem, "name": package_name(ecosystem, package)},
                "ranges": ranges,
            }
        ],
    }
    if i % 5:
        doc["severity"] = [{"type": "CVSS_V3", "score": _VECTORS[i % len(_VECTORS)]}]
    return doc


def advisories(
    count: int,
    *,
    seed: int = 11,
    packages: int | None = None,
    prefix: str = "SYN",
    modified: datetime = MODIFIED,
) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    spread = packages or max(1, count // 3)
    for i in range(count):
        yield advisory(i, rng, packages=spread, prefix=prefix, modified=modified)


def bundle(documents: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> bytes:
    """A zip of ``<id>.json`` files, as the OSV export ships them."""
    buffer = io.BytesIO()
    encoder = msgspec.json.Encoder()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as out:
        for doc in documents:
            out.writestr(f"{doc['id']}.json", encoder.encode(doc))
    return buffer.getvalue()


def folder_bundle(folder: Path) -> bytes:
    """A zip of the ``*.json`` files of a folder (the real OSV data), names as they are."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as out:
        for path in sorted(folder.rglob("*.json")):
            out.writestr(path.relative_to(folder).as_posix(), path.read_bytes())
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.write_bytes(bundle(advisories(args.count, seed=args.seed)))
    print(f"wrote {args.count} advisories to {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
