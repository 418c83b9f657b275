"""Micro-benchmark: parse a generated 10,000-component CycloneDX JSON SBOM, as a ratio to the
time msgspec alone needs to decode the same bytes into Python objects (the floor); the same
SBOM as CycloneDX XML is timed too (no floor: it is reported as seconds).

    .venv/bin/python -m tests.bench.sbom_micro [--components N] [--rounds R]

Prints one JSON line with the figures. No assertion: the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from collections.abc import Callable
from xml.sax.saxutils import escape

import msgspec

from services.scanner.domain.sbom import parse_sbom

ECOSYSTEMS = (
    ("npm", "npm"),
    ("pypi", "pypi"),
    ("maven", "maven"),
    ("golang", "golang"),
    ("cargo", "cargo"),
    ("gem", "gem"),
)


def generate(count: int) -> bytes:
    """A CycloneDX 1.5 document shaped like real generator output: purls, hashes, licenses,
    external references, properties and a dependency graph (each component depends on the
    next three, the subject on the first fifty)."""
    components = []
    for i in range(count):
        purl_type, _ = ECOSYSTEMS[i % len(ECOSYSTEMS)]
        namespace = {"maven": "org.example.group", "golang": "github.com/example"}.get(purl_type)
        name = f"package-{i}"
        purl = (
            f"pkg:{purl_type}/{namespace + '/' if namespace else ''}{name}@{i % 17}.{i % 5}.{i % 3}"
        )
        components.append(
            {
                "type": "library",
                "bom-ref": purl,
                "group": namespace or "",
                "name": name,
                "version": f"{i % 17}.{i % 5}.{i % 3}",
                "description": f"Component number {i}, generated for the benchmark",
                "scope": "required" if i % 7 else "optional",
                "hashes": [{"alg": "SHA-256", "content": f"{i:064x}"}],
                "licenses": [{"license": {"id": "MIT"}}]
                if i % 3
                else [{"expression": "Apache-2.0 OR MIT"}],
                "purl": purl,
                "externalReferences": [
                    {"type": "website", "url": f"https://example.com/{name}"},
                    {"type": "vcs", "url": f"https://github.com/example/{name}.git"},
                ],
                "properties": [{"name": "cdx:npm:package:path", "value": f"node_modules/{name}"}],
            }
        )
    refs = [c["bom-ref"] for c in components]
    dependencies = [{"ref": "app", "dependsOn": refs[:50]}] + [
        {"ref": ref, "dependsOn": refs[i + 1 : i + 4]} for i, ref in enumerate(refs)
    ]
    document = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": "urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79",
        "version": 1,
        "metadata": {"component": {"type": "application", "bom-ref": "app", "name": "app"}},
        "components": components,
        "dependencies": dependencies,
    }
    return json.dumps(document).encode()


def to_xml(document: bytes) -> bytes:
    """The same SBOM as CycloneDX 1.5 XML."""
    bom = json.loads(document)
    parts = ['<?xml version="1.0"?>\n<bom xmlns="http://cyclonedx.org/schema/bom/1.5" version="1">']
    parts.append(
        '<metadata><component type="application" bom-ref="app"><name>app</name></component>'
    )
    parts.append("</metadata><components>")
    for c in bom["components"]:
        licenses = "".join(
            f"<expression>{escape(item['expression'])}</expression>"
            if "expression" in item
            else f"<license><id>{escape(item['license']['id'])}</id></license>"
            for item in c["licenses"]
        )
        parts.append(
            f'<component type="library" bom-ref="{escape(c["bom-ref"])}">'
            f"<group>{escape(c['group'])}</group><name>{escape(c['name'])}</name>"
            f"<version>{escape(c['version'])}</version>"
            f"<description>{escape(c['description'])}</description><scope>{c['scope']}</scope>"
            f'<hashes><hash alg="SHA-256">{c["hashes"][0]["content"]}</hash></hashes>'
            f"<licenses>{licenses}</licenses><purl>{escape(c['purl'])}</purl>"
            "</component>"
        )
    parts.append("</components><dependencies>")
    for d in bom["dependencies"]:
        children = "".join(f'<dependency ref="{escape(r)}"/>' for r in d["dependsOn"])
        parts.append(f'<dependency ref="{escape(d["ref"])}">{children}</dependency>')
    parts.append("</dependencies></bom>")
    return "".join(parts).encode()


def best_of(rounds: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(rounds):
        gc.collect()
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--components", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    data = generate(args.components)
    bom = parse_sbom(data)
    assert len(bom.components) == args.components, len(bom.components)
    floor = best_of(args.rounds, lambda: msgspec.json.decode(data))
    parse = best_of(args.rounds, lambda: parse_sbom(data))
    xml = to_xml(data)
    assert len(parse_sbom(xml).components) == args.components
    xml_parse = best_of(max(1, args.rounds // 2), lambda: parse_sbom(xml))
    print(
        json.dumps(
            {
                "components": args.components,
                "bytes": len(data),
                "msgspec_decode_s": round(floor, 4),
                "parse_sbom_s": round(parse, 4),
                "ratio": round(parse / floor, 2),
                "xml_bytes": len(xml),
                "xml_parse_s": round(xml_parse, 4),
            }
        )
    )


if __name__ == "__main__":
    main()
