"""Write the machine-readable event catalog from the Structs.

``python -m contracts.generate`` writes ``contracts/schemas/<event-type>.v<N>.json`` (one JSON
Schema per event type and schema version) and ``contracts/asyncapi.yaml``, and removes schema
files of events that no longer exist. ``python -m contracts.generate --check`` writes nothing
and exits 1 naming every file that differs from what the Structs generate.

The output is deterministic: sorted keys in the schemas, catalog order in the AsyncAPI
document, ``\\n`` line endings and a trailing newline.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from contracts.catalog import SCHEMAS_DIR, asyncapi_document, catalog_entries, schema_file_name

CONTRACTS_DIR = Path(__file__).resolve().parent
ASYNCAPI_FILE = "asyncapi.yaml"
REGENERATE_HINT = "run `python -m contracts.generate` and commit the result"
_ASYNCAPI_HEADER = (
    "# Generated from the event Structs by `python -m contracts.generate`; do not edit.\n"
)


def render_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_yaml(value: Any) -> str:
    body = yaml.safe_dump(
        value, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100
    )
    return _ASYNCAPI_HEADER + body


def generated_files() -> dict[str, str]:
    """Relative path (under ``contracts/``) → exact file content."""
    entries = catalog_entries()
    files = {
        f"{SCHEMAS_DIR}/{schema_file_name(e.type, e.schema_version)}": render_json(e.schema)
        for e in entries
    }
    files[ASYNCAPI_FILE] = render_yaml(asyncapi_document(entries))
    return files


def stale_files(root: Path = CONTRACTS_DIR) -> list[str]:
    """Files that are missing, differ, or are schemas of no registered event (sorted)."""
    wanted = generated_files()
    stale = []
    for relative, content in wanted.items():
        path = root / relative
        if not path.is_file() or path.read_text(encoding="utf-8") != content:
            stale.append(relative)
    stale.extend(_orphans(root, wanted))
    return sorted(stale)


def _orphans(root: Path, wanted: dict[str, str]) -> list[str]:
    folder = root / SCHEMAS_DIR
    if not folder.is_dir():
        return []
    return [
        f"{SCHEMAS_DIR}/{path.name}"
        for path in sorted(folder.glob("*.json"))
        if f"{SCHEMAS_DIR}/{path.name}" not in wanted
    ]


def write_files(root: Path = CONTRACTS_DIR) -> list[str]:
    """Bring the files under ``root`` in line with the Structs; returns what changed."""
    changed = stale_files(root)
    wanted = generated_files()
    for relative in changed:
        path = root / relative
        if relative in wanted:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(wanted[relative], encoding="utf-8", newline="\n")
        else:
            path.unlink()
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m contracts.generate",
        description="Generate the JSON Schemas and the AsyncAPI document of the event catalog.",
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if any file is stale"
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=CONTRACTS_DIR,
        help="the contracts folder to write or check (default: this package)",
    )
    args = parser.parse_args(argv)
    root: Path = args.root
    if args.check:
        stale = stale_files(root)
        if stale:
            names = ", ".join(f"contracts/{name}" for name in stale)
            print(f"stale generated contracts: {names}; {REGENERATE_HINT}", file=sys.stderr)
            return 1
        print("generated contracts are up to date")
        return 0
    changed = write_files(root)
    for name in changed:
        verb = "wrote" if (root / name).exists() else "removed"
        print(f"{verb} contracts/{name}")
    if not changed:
        print("generated contracts are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
