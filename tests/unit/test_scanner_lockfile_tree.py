"""``scan_tree`` over dict and zip trees: discovery, skipped directories, merging, failures."""

from __future__ import annotations

import io
import json
import zipfile
from collections import Counter

from services.scanner.domain.lockfiles import DictTree, ZipTree, find_lockfiles, scan_tree
from tests.unit.test_scanner_lockfiles import fixtures


def as_bytes(files: dict[str, str]) -> dict[str, bytes]:
    return {path: text.encode() for path, text in files.items()}


def test_every_lockfile_type_is_found_and_read() -> None:
    scan = scan_tree(DictTree(as_bytes(fixtures())))
    assert [r.kind for r in scan.lockfiles] == [
        "poetry.lock",
        "go.mod",
        "composer.lock",
        "requirements.txt",
        "Gemfile.lock",
        "Cargo.lock",
        "Pipfile.lock",
        "uv.lock",
        "package-lock.json",
    ]
    assert scan.failures == ()
    assert Counter(c.ecosystem for c in scan.components) == {
        "npm": 9,
        "PyPI": 5 + 1 + 7 + 3,  # poetry, requirements, uv, Pipfile
        "Go": 7,
        "crates.io": 4,
        "Packagist": 3,
        "RubyGems": 6,
    }
    assert len({c.ref for c in scan.components}) == len(scan.components)
    warnings = [(w.code, w.location) for w in scan.warnings]
    assert ("unpinned_requirement", "requirements.txt:2") in warnings


def test_dependency_and_vcs_directories_are_skipped() -> None:
    paths = [
        "package-lock.json",
        "node_modules/x/package-lock.json",
        "a/node_modules/y/go.mod",
        ".git/go.mod",
        "vendor/github.com/x/go.mod",
        "php/vendor/composer.lock",
        "src/vendored/go.mod",
        "docs/requirements.txt",
        "requirements/base.txt",
        "notes.txt",
        "Gemfile",
    ]
    assert find_lockfiles(paths) == [
        "docs/requirements.txt",
        "package-lock.json",
        "requirements/base.txt",
        "src/vendored/go.mod",
    ]


def test_the_same_package_in_two_lockfiles_merges() -> None:
    tree = DictTree(
        as_bytes(
            {
                "requirements.txt": "requests==2.31.0\n",
                "requirements-dev.txt": "Requests==2.31.0\npytest==8.0.0\n",
                "svc/Pipfile.lock": json.dumps(
                    {
                        "default": {},
                        "develop": {"requests": {"version": "==2.31.0", "hashes": ["sha256:ab"]}},
                    }
                ),
            }
        )
    )
    scan = scan_tree(tree)
    merged = {c.ref: c for c in scan.components}
    assert set(merged) == {"PyPI:requests@2.31.0", "PyPI:pytest@8.0.0"}
    requests = merged["PyPI:requests@2.31.0"]
    assert requests.scope == "required"  # required by requirements.txt, dev elsewhere
    assert [h.value for h in requests.hashes] == ["ab"]
    assert merged["PyPI:pytest@8.0.0"].scope == "dev"


def test_a_broken_lockfile_fails_alone() -> None:
    files = as_bytes(fixtures())
    files["broken/go.mod"] = b"module m\nrequire (\n\ta v1\n"
    files["broken/package-lock.json"] = b'{"packages": '
    scan = scan_tree(DictTree(files))
    assert [(f.path, f.code, f.location) for f in scan.failures] == [
        ("broken/go.mod", "lockfile_malformed", "broken/go.mod:2"),
        (
            "broken/package-lock.json",
            "lockfile_malformed",
            "broken/package-lock.json: end of input, line 1, column 14",
        ),
    ]
    assert len(scan.lockfiles) == 9


def test_oversized_lockfiles_are_not_read() -> None:
    scan = scan_tree(DictTree({"go.mod": b"module m\n" + b"\n" * 100}), max_file_size=50)
    assert [f.code for f in scan.failures] == ["lockfile_too_large"]


def test_requirements_included_twice_warn_once() -> None:
    tree = DictTree(
        as_bytes(
            {
                "requirements.txt": "-r requirements-base.txt\n",
                "requirements-base.txt": "flask>=1\n",
            }
        )
    )
    scan = scan_tree(tree)
    warnings = [(w.code, w.location) for w in scan.warnings]
    assert warnings == [("unpinned_requirement", "requirements-base.txt:1")]


def test_zip_tree_gives_the_same_scan_as_a_dict_tree() -> None:
    files = fixtures()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, text in files.items():
            archive.writestr(f"project-main/{path}", text)
        archive.writestr("project-main/node_modules/x/package-lock.json", "{broken")
    from_zip = scan_tree(ZipTree.open(buffer.getvalue()))
    from_dict = scan_tree(DictTree({f"project-main/{p}": t.encode() for p, t in files.items()}))
    assert from_zip == from_dict
    assert len(from_zip.components) > 40
