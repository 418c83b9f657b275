"""Lockfile readers on lockfiles written in the test, one section per format."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from services.scanner.domain.errors import LockfileError
from services.scanner.domain.lockfiles import DictTree, LockfileReport, reader_for
from services.scanner.domain.model import Component, Hash, License


def read(path: str, files: dict[str, str | bytes]) -> LockfileReport:
    tree = DictTree({p: c.encode() if isinstance(c, str) else c for p, c in files.items()})
    reader = reader_for(path)
    assert reader is not None, path
    return reader(path, tree.read(path), tree)


def by_name(report: LockfileReport) -> dict[str, Component]:
    return {f"{c.name}@{c.version}": c for c in report.components}


def edges(report: LockfileReport) -> dict[str, set[str]]:
    return {d.ref: set(d.depends_on) for d in report.dependencies}


# --- package-lock.json -------------------------------------------------------------------

SHA512 = base64.b64encode(bytes(range(64))).decode()

PACKAGE_LOCK_V3 = {
    "name": "app",
    "version": "1.0.0",
    "lockfileVersion": 3,
    "requires": True,
    "packages": {
        "": {
            "name": "app",
            "version": "1.0.0",
            "dependencies": {
                "express": "^4.17.1",
                "@babel/core": "^7.0.0",
                "lodash-alias": "npm:lodash@^4",
            },
            "devDependencies": {"jest": "^29.0.0"},
            "workspaces": ["packages/*"],
        },
        "node_modules/express": {
            "version": "4.17.1",
            "resolved": "https://registry.npmjs.org/express/-/express-4.17.1.tgz",
            "integrity": f"sha512-{SHA512}",
            "license": "MIT",
            "dependencies": {"debug": "2.6.9", "qs": "6.7.0"},
        },
        "node_modules/debug": {"version": "4.3.4", "license": "MIT", "dev": True},
        "node_modules/express/node_modules/debug": {"version": "2.6.9", "license": "MIT"},
        "node_modules/qs": {"version": "6.7.0", "license": "BSD-3-Clause"},
        "node_modules/@babel/core": {"version": "7.22.0", "license": "MIT"},
        "node_modules/lodash-alias": {"name": "lodash", "version": "4.17.21", "license": "MIT"},
        "node_modules/jest": {
            "version": "29.7.0",
            "dev": True,
            "license": "MIT",
            "dependencies": {"debug": "^4"},
        },
        "node_modules/fsevents": {"version": "2.3.3", "optional": True, "license": "MIT"},
        "node_modules/ws-lib": {"resolved": "packages/lib", "link": True},
        "packages/lib": {
            "name": "ws-lib",
            "version": "0.1.0",
            "dependencies": {"left-pad": "1.3.0"},
        },
        "packages/lib/node_modules/left-pad": {"version": "1.3.0", "license": "WTFPL"},
        "node_modules/broken": {"resolved": "file:../broken"},
    },
}


def test_package_lock_v3() -> None:
    report = read("web/package-lock.json", {"web/package-lock.json": json.dumps(PACKAGE_LOCK_V3)})
    comps = by_name(report)
    assert set(comps) == {
        "express@4.17.1",
        "debug@4.3.4",
        "debug@2.6.9",
        "qs@6.7.0",
        "@babel/core@7.22.0",
        "lodash@4.17.21",
        "jest@29.7.0",
        "fsevents@2.3.3",
        "left-pad@1.3.0",
    }
    express = comps["express@4.17.1"]
    assert express.purl == "pkg:npm/express@4.17.1"
    assert express.ecosystem == "npm" and express.package == "express"
    assert express.hashes == (Hash("SHA-512", bytes(range(64)).hex()),)
    assert express.licenses == (License(id="MIT"),)
    assert comps["@babel/core@7.22.0"].purl == "pkg:npm/%40babel/core@7.22.0"
    assert {n: (c.direct, c.scope) for n, c in comps.items()} == {
        "express@4.17.1": (True, "required"),
        "debug@4.3.4": (False, "dev"),
        "debug@2.6.9": (False, "required"),
        "qs@6.7.0": (False, "required"),
        "@babel/core@7.22.0": (True, "required"),
        "lodash@4.17.21": (True, "required"),  # an alias: the real package is what matters
        "jest@29.7.0": (True, "dev"),
        "fsevents@2.3.3": (False, "optional"),
        "left-pad@1.3.0": (True, "required"),  # a workspace member's own dependency
    }
    graph = edges(report)
    # express gets its nested debug 2.6.9, not the hoisted 4.3.4; jest gets the hoisted one.
    assert graph["npm:express@4.17.1"] == {"npm:debug@2.6.9", "npm:qs@6.7.0"}
    assert graph["npm:jest@29.7.0"] == {"npm:debug@4.3.4"}
    assert [w.code for w in report.warnings] == ["unversioned_package"]


def test_package_lock_v2_reads_packages_not_the_legacy_section() -> None:
    lock = {
        "lockfileVersion": 2,
        "packages": {"": {"dependencies": {"a": "1"}}, "node_modules/a": {"version": "1.0.0"}},
        "dependencies": {"a": {"version": "1.0.0"}, "ghost": {"version": "9.9.9"}},
    }
    report = read("package-lock.json", {"package-lock.json": json.dumps(lock)})
    assert [(c.name, c.direct) for c in report.components] == [("a", True)]


PACKAGE_LOCK_V1 = {
    "name": "legacy",
    "version": "1.0.0",
    "lockfileVersion": 1,
    "requires": True,
    "dependencies": {
        "express": {
            "version": "4.16.0",
            "integrity": f"sha512-{SHA512}",
            "requires": {"debug": "2.6.9"},
            "dependencies": {"debug": {"version": "2.6.9", "requires": {"ms": "2.0.0"}}},
        },
        "ms": {"version": "2.0.0"},
        "mocha": {"version": "5.0.0", "dev": True, "requires": {"ms": "2.0.0"}},
        "aliased": {"version": "npm:real-pkg@1.2.3"},
    },
}


def test_package_lock_v1_with_package_json_beside_it() -> None:
    files = {
        "package-lock.json": json.dumps(PACKAGE_LOCK_V1),
        "package.json": json.dumps(
            {"dependencies": {"express": "^4"}, "devDependencies": {"mocha": "5"}}
        ),
    }
    report = read("package-lock.json", files)
    comps = by_name(report)
    assert {n: (c.direct, c.scope) for n, c in comps.items()} == {
        "express@4.16.0": (True, "required"),
        "debug@2.6.9": (False, "required"),
        "ms@2.0.0": (False, "required"),
        "mocha@5.0.0": (True, "dev"),
        "real-pkg@1.2.3": (False, "required"),
    }
    assert edges(report)["npm:debug@2.6.9"] == {"npm:ms@2.0.0"}


def test_package_lock_v1_without_package_json_has_unknown_direct() -> None:
    report = read("package-lock.json", {"package-lock.json": json.dumps(PACKAGE_LOCK_V1)})
    assert {c.direct for c in report.components} == {None}


def test_package_lock_errors_name_the_file_and_path() -> None:
    with pytest.raises(LockfileError) as caught:
        read("a/package-lock.json", {"a/package-lock.json": '{"lockfileVersion": 3, "packages": {'})
    assert caught.value.location is not None and caught.value.location.startswith(
        "a/package-lock.json: end of input"
    )
    with pytest.raises(LockfileError) as caught:
        read(
            "package-lock.json",
            {"package-lock.json": '{"packages": {"node_modules/a": {"version": 1}}}'},
        )
    assert caught.value.location == "package-lock.json: $.packages[...].version"


# --- requirements.txt --------------------------------------------------------------------

REQUIREMENTS = """\
# a comment line
-i https://pypi.org/simple
--extra-index-url https://example.com/simple
Django==2.2.0  # trailing comment
requests[security]==2.19.1 ; python_version >= "3.6" \\
    --hash=sha256:63b52e3c866428a224f97cab011de738c36aec0185aa91cfacd418b5d58911d1 \\
    --hash=sha256:ec22d826a36ed72a7358ff3fe56cbd4ba69dd7a6718ffd450ff0e9df7a47ce6a
urllib3===1.24.1
flask>=1.0
jinja2
numpy==1.*
-e git+https://github.com/org/project.git#egg=project
./local/package
pkg @ https://example.com/pkg-1.0.tar.gz
-c constraints.txt
-r requirements/base.txt
--requirement=missing.txt
-r ../outside.txt
this is not a requirement ===
"""


def test_requirements_pinned_only_with_skips_on_their_lines() -> None:
    files = {
        "requirements.txt": REQUIREMENTS,
        "requirements/base.txt": "# base\nsix==1.16.0\n-r ../requirements.txt\n",
    }
    report = read("requirements.txt", files)
    comps = by_name(report)
    assert set(comps) == {"Django@2.2.0", "requests@2.19.1", "urllib3@1.24.1", "six@1.16.0"}
    assert comps["Django@2.2.0"].purl == "pkg:pypi/django@2.2.0"
    assert comps["Django@2.2.0"].ref == "PyPI:django@2.2.0"
    assert comps["requests@2.19.1"].hashes == (
        Hash("SHA-256", "63b52e3c866428a224f97cab011de738c36aec0185aa91cfacd418b5d58911d1"),
        Hash("SHA-256", "ec22d826a36ed72a7358ff3fe56cbd4ba69dd7a6718ffd450ff0e9df7a47ce6a"),
    )
    assert {c.scope for c in report.components} == {"required"}
    assert {c.direct for c in report.components} == {None}  # no pip-compile annotations
    skipped = [(w.code, w.location) for w in report.warnings]
    assert skipped == [
        ("unpinned_requirement", "requirements.txt:9"),
        ("unpinned_requirement", "requirements.txt:10"),
        ("unpinned_requirement", "requirements.txt:11"),
        ("unpinned_requirement", "requirements.txt:12"),
        ("unpinned_requirement", "requirements.txt:13"),
        ("unpinned_requirement", "requirements.txt:14"),
        ("include_missing", "requirements.txt:17"),
        ("include_outside_tree", "requirements.txt:18"),
        ("invalid_requirement", "requirements.txt:19"),
    ]


PIP_COMPILE = """\
#
# This file is autogenerated by pip-compile with Python 3.11
#
click==8.1.7
    # via flask
flask==3.0.0
    # via -r requirements.in
itsdangerous==2.1.2
    # via
    #   flask
    #   -r requirements.in
werkzeug==3.0.1  # via flask
"""


def test_pip_compile_annotations_give_direct_and_edges() -> None:
    report = read("requirements-dev.txt", {"requirements-dev.txt": PIP_COMPILE})
    comps = by_name(report)
    assert {n: c.direct for n, c in comps.items()} == {
        "click@8.1.7": False,
        "flask@3.0.0": True,
        "itsdangerous@2.1.2": True,
        "werkzeug@3.0.1": False,
    }
    assert edges(report) == {
        "PyPI:flask@3.0.0": {"PyPI:click@8.1.7", "PyPI:itsdangerous@2.1.2", "PyPI:werkzeug@3.0.1"}
    }
    assert {c.scope for c in report.components} == {"dev"}  # the file name says dev


@pytest.mark.parametrize(
    ("path", "scope"),
    [
        ("requirements.txt", "required"),
        ("requirements-dev.txt", "dev"),
        ("dev-requirements.txt", "dev"),
        ("requirements/test.txt", "dev"),
        ("requirements_docs.txt", "dev"),
        ("requirements/prod.txt", "required"),
        ("requirements-devices.txt", "required"),
    ],
)
def test_requirements_scope_from_the_file_name(path: str, scope: str) -> None:
    report = read(path, {path: "a==1.0\n"})
    assert report.components[0].scope == scope


# --- poetry.lock -------------------------------------------------------------------------

FLASK_SHA = "a6209ca15eb63fc9385f38e452704113d679511d9574d09b2cf9183ae7d20dc9"
POETRY_LOCK = """\
[[package]]
name = "Flask"
version = "2.0.1"
description = "web"
optional = false
python-versions = ">=3.6"
files = [
    {file = "Flask-2.0.1-py3-none-any.whl", hash = "sha256:{FLASK_SHA}"},
]

[package.dependencies]
Jinja2 = ">=3.0"
click = {version = ">=7.1.2", markers = "python_version >= '3.6'"}

[[package]]
name = "jinja2"
version = "3.0.1"
optional = false
python-versions = ">=3.6"
files = []

[[package]]
name = "click"
version = "8.0.1"
optional = false
python-versions = ">=3.6"
files = []

[[package]]
name = "pytest"
version = "6.2.4"
optional = false
python-versions = ">=3.6"
files = []

[package.dependencies]
click = "*"

[[package]]
name = "pyyaml"
version = "5.3"
optional = true
python-versions = "*"
files = []

[metadata]
lock-version = "2.0"
python-versions = "^3.8"
content-hash = "abc"
""".replace("{FLASK_SHA}", FLASK_SHA)

PYPROJECT = """\
[tool.poetry]
name = "app"
version = "0.1.0"

[tool.poetry.dependencies]
python = "^3.8"
flask = "^2.0"
PyYAML = {version = "^5.3", optional = true}

[tool.poetry.group.dev.dependencies]
pytest = "^6.2"
"""


def test_poetry_lock_with_pyproject() -> None:
    report = read("poetry.lock", {"poetry.lock": POETRY_LOCK, "pyproject.toml": PYPROJECT})
    comps = by_name(report)
    assert {n: (c.direct, c.scope) for n, c in comps.items()} == {
        "Flask@2.0.1": (True, "required"),
        "jinja2@3.0.1": (False, "required"),
        "click@8.0.1": (False, "required"),  # reached from flask (main) and pytest (dev)
        "pytest@6.2.4": (True, "dev"),
        "pyyaml@5.3": (True, "required"),
    }
    assert comps["Flask@2.0.1"].hashes == (
        Hash("SHA-256", "a6209ca15eb63fc9385f38e452704113d679511d9574d09b2cf9183ae7d20dc9"),
    )
    assert edges(report)["PyPI:flask@2.0.1"] == {"PyPI:jinja2@3.0.1", "PyPI:click@8.0.1"}


def test_poetry_lock_v1_categories() -> None:
    lock = POETRY_LOCK.replace(
        'version = "6.2.4"\n', 'version = "6.2.4"\ncategory = "dev"\n'
    ).replace('version = "2.0.1"\n', 'version = "2.0.1"\ncategory = "main"\n')
    report = read("poetry.lock", {"poetry.lock": lock})
    comps = by_name(report)
    assert comps["pytest@6.2.4"].scope == "dev"
    assert comps["Flask@2.0.1"].scope == "required"
    assert comps["jinja2@3.0.1"].scope == "unknown"  # no category, no pyproject
    assert comps["Flask@2.0.1"].direct is None


def test_poetry_lock_syntax_error() -> None:
    with pytest.raises(LockfileError) as caught:
        read("poetry.lock", {"poetry.lock": "[[package]]\nname = \n"})
    assert "line 2" in caught.value.detail
    assert caught.value.location == "poetry.lock"


def test_poetry_lock_shape_error() -> None:
    with pytest.raises(LockfileError) as caught:
        read("poetry.lock", {"poetry.lock": '[[package]]\nname = "a"\n'})
    assert caught.value.location == "poetry.lock: $.package[0]"


# --- uv.lock -----------------------------------------------------------------------------

UV_LOCK = """\
version = 1
requires-python = ">=3.11"

[[package]]
name = "app"
version = "0.1.0"
source = { editable = "." }
dependencies = [
    { name = "httpx" },
]

[package.optional-dependencies]
yaml = [
    { name = "pyyaml" },
]

[package.dev-dependencies]
dev = [
    { name = "pytest" },
]

[[package]]
name = "httpx"
version = "0.27.0"
source = { registry = "https://pypi.org/simple" }
dependencies = [
    { name = "idna" },
]
sdist = { url = "https://x/httpx-0.27.0.tar.gz", hash = "sha256:aaaa", size = 1 }
wheels = [
    { url = "https://x/httpx-0.27.0-py3-none-any.whl", hash = "sha256:bbbb", size = 1 },
]

[[package]]
name = "idna"
version = "3.7"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "pytest"
version = "8.2.0"
source = { registry = "https://pypi.org/simple" }
dependencies = [
    { name = "idna" },
    { name = "pluggy" },
]

[[package]]
name = "pluggy"
version = "1.5.0"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "pyyaml"
version = "6.0.1"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "numpy"
version = "1.26.4"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "numpy"
version = "2.0.0"
source = { registry = "https://pypi.org/simple" }
"""


def test_uv_lock() -> None:
    report = read("uv.lock", {"uv.lock": UV_LOCK})
    comps = by_name(report)
    assert {n: (c.direct, c.scope) for n, c in comps.items()} == {
        "httpx@0.27.0": (True, "required"),
        "idna@3.7": (False, "required"),  # required through httpx, though pytest (dev) wants it too
        "pytest@8.2.0": (True, "dev"),
        "pluggy@1.5.0": (False, "dev"),
        "pyyaml@6.0.1": (True, "optional"),
        "numpy@1.26.4": (False, "unknown"),
        "numpy@2.0.0": (False, "unknown"),
    }
    assert comps["httpx@0.27.0"].hashes == (Hash("SHA-256", "aaaa"), Hash("SHA-256", "bbbb"))


# --- Pipfile.lock ------------------------------------------------------------------------

PIPFILE_LOCK = {
    "_meta": {"hash": {"sha256": "x"}, "pipfile-spec": 6},
    "default": {
        "requests": {"hashes": ["sha256:1111"], "index": "pypi", "version": "==2.31.0"},
        "certifi": {"hashes": ["sha256:2222"], "version": "==2024.2.2"},
        "mylib": {"git": "https://github.com/org/mylib.git", "ref": "abc"},
    },
    "develop": {
        "pytest": {"hashes": [], "version": "==8.0.0"},
        "certifi": {"hashes": ["sha256:2222"], "version": "==2024.2.2"},
    },
}

PIPFILE = """\
[packages]
requests = "*"
mylib = {git = "https://github.com/org/mylib.git"}

[dev-packages]
pytest = "*"
"""


def test_pipfile_lock() -> None:
    report = read("Pipfile.lock", {"Pipfile.lock": json.dumps(PIPFILE_LOCK), "Pipfile": PIPFILE})
    comps = by_name(report)
    assert {n: (c.direct, c.scope) for n, c in comps.items()} == {
        "requests@2.31.0": (True, "required"),
        "certifi@2024.2.2": (False, "required"),  # in both sections: the widest wins
        "pytest@8.0.0": (True, "dev"),
    }
    assert comps["requests@2.31.0"].hashes == (Hash("SHA-256", "1111"),)
    assert [(w.code, w.location) for w in report.warnings] == [
        ("unpinned_requirement", "Pipfile.lock: $.default['mylib']")
    ]


# --- go.mod ------------------------------------------------------------------------------

GO_MOD = """\
module github.com/example/app

go 1.21

toolchain go1.21.5

require github.com/gin-gonic/gin v1.9.1

require (
\tgolang.org/x/crypto v0.14.0 // indirect
\tgithub.com/old/module v1.0.0
\t"github.com/quoted/module" v0.3.0 // indirect; used by tests
\tgithub.com/local/fork v1.2.0
\tgithub.com/pinned/only v1.0.0
\tgithub.com/pinned/only2 v2.0.0+incompatible
)

replace github.com/old/module => github.com/new/module v1.1.0

replace (
\tgithub.com/local/fork => ../fork
\tgithub.com/pinned/only v1.0.0 => github.com/pinned/only v1.0.1
\tgithub.com/pinned/only v0.9.0 => github.com/pinned/only v0.9.9
)

exclude golang.org/x/net v1.2.3
retract v1.0.0
"""


def test_go_mod() -> None:
    report = read("go.mod", {"go.mod": GO_MOD})
    comps = by_name(report)
    assert {n: c.direct for n, c in comps.items()} == {
        "github.com/gin-gonic/gin@v1.9.1": True,
        "golang.org/x/crypto@v0.14.0": False,
        "github.com/new/module@v1.1.0": True,  # replaced: what is built is the replacement
        "github.com/quoted/module@v0.3.0": False,
        "github.com/pinned/only@v1.0.1": True,
        "github.com/pinned/only2@v2.0.0+incompatible": True,
        "stdlib@1.21.5": None,  # the toolchain line wins over the go line
    }
    gin = comps["github.com/gin-gonic/gin@v1.9.1"]
    assert gin.purl == "pkg:golang/github.com/gin-gonic/gin@v1.9.1"
    assert gin.package == "github.com/gin-gonic/gin" and gin.ecosystem == "Go"
    assert [(w.code, w.location) for w in report.warnings] == [
        ("replaced_by_local_path", "go.mod:21")
    ]


@pytest.mark.parametrize(
    ("line", "stdlib"),
    [("go 1.20", "1.20.0"), ("go 1.22.3", "1.22.3"), ("go 1.21rc2", "1.21.0-rc2")],
)
def test_go_mod_stdlib_from_the_go_line(line: str, stdlib: str) -> None:
    report = read("go.mod", {"go.mod": f"module m\n\n{line}\n"})
    assert [(c.name, c.version) for c in report.components] == [("stdlib", stdlib)]


@pytest.mark.parametrize(
    ("text", "location"),
    [
        ("module m\nrequire (\n\ta v1\n", "go.mod:2"),
        ("module m\nrequire a\n", "go.mod:2"),
        ("module m\nreplace a b\n", "go.mod:2"),
    ],
)
def test_go_mod_errors_name_the_line(text: str, location: str) -> None:
    with pytest.raises(LockfileError) as caught:
        read("go.mod", {"go.mod": text})
    assert caught.value.location == location


# --- Cargo.lock --------------------------------------------------------------------------

CARGO_LOCK = """\
version = 3

[[package]]
name = "app"
version = "0.1.0"
dependencies = [
 "serde",
 "rand 0.8.5",
 "helper",
]

[[package]]
name = "helper"
version = "0.1.0"
dependencies = [
 "rand 0.7.3",
]

[[package]]
name = "serde"
version = "1.0.190"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "91d3c334ca1ee894a2c6f6ad698fe8c435b76d504b13d436f0685d648d6d96f7"
dependencies = [
 "serde_derive",
]

[[package]]
name = "serde_derive"
version = "1.0.190"
source = "registry+https://github.com/rust-lang/crates.io-index"

[[package]]
name = "rand"
version = "0.8.5"
source = "registry+https://github.com/rust-lang/crates.io-index"

[[package]]
name = "rand"
version = "0.7.3"
source = "registry+https://github.com/rust-lang/crates.io-index"
"""


def test_cargo_lock() -> None:
    report = read("Cargo.lock", {"Cargo.lock": CARGO_LOCK})
    comps = by_name(report)
    assert {n: (c.direct, c.scope) for n, c in comps.items()} == {
        "serde@1.0.190": (True, "unknown"),
        "serde_derive@1.0.190": (False, "unknown"),
        "rand@0.8.5": (True, "unknown"),
        "rand@0.7.3": (True, "unknown"),  # a local path crate's dependency is direct too
    }
    serde = comps["serde@1.0.190"]
    assert serde.purl == "pkg:cargo/serde@1.0.190" and serde.ecosystem == "crates.io"
    assert serde.hashes == (
        Hash("SHA-256", "91d3c334ca1ee894a2c6f6ad698fe8c435b76d504b13d436f0685d648d6d96f7"),
    )
    assert edges(report) == {"crates.io:serde@1.0.190": {"crates.io:serde_derive@1.0.190"}}


def test_cargo_lock_v1_metadata_checksums() -> None:
    lock = """\
[[package]]
name = "libc"
version = "0.2.50"
source = "registry+https://github.com/rust-lang/crates.io-index"

[metadata]
"checksum libc 0.2.50 (registry+https://github.com/rust-lang/crates.io-index)" = "abcd"
"""
    (libc,) = read("Cargo.lock", {"Cargo.lock": lock}).components
    assert libc.hashes == (Hash("SHA-256", "abcd"),)
    assert libc.direct is None  # no local crate in the lockfile to be the root


# --- composer.lock -----------------------------------------------------------------------

COMPOSER_LOCK = {
    "content-hash": "x",
    "packages": [
        {
            "name": "laravel/framework",
            "version": "v7.12.0",
            "dist": {"type": "zip", "shasum": ""},
            "require": {"php": "^7.2.5", "ext-json": "*", "symfony/console": "^5.0"},
            "license": ["MIT"],
        },
        {
            "name": "symfony/console",
            "version": "v5.0.8",
            "dist": {"type": "zip", "shasum": "abcdef"},
            "license": ["MIT", "GPL-2.0-or-later"],
        },
    ],
    "packages-dev": [{"name": "phpunit/phpunit", "version": "8.5.5", "license": ["BSD-3-Clause"]}],
}


def test_composer_lock() -> None:
    files = {
        "composer.lock": json.dumps(COMPOSER_LOCK),
        "composer.json": json.dumps(
            {"require": {"laravel/framework": "^7"}, "require-dev": {"phpunit/phpunit": "^8"}}
        ),
    }
    report = read("composer.lock", files)
    comps = by_name(report)
    assert {n: (c.direct, c.scope) for n, c in comps.items()} == {
        "laravel/framework@v7.12.0": (True, "required"),
        "symfony/console@v5.0.8": (False, "required"),
        "phpunit/phpunit@8.5.5": (True, "dev"),
    }
    framework = comps["laravel/framework@v7.12.0"]
    assert framework.purl == "pkg:composer/laravel/framework@v7.12.0"
    assert framework.package == "laravel/framework" and framework.ecosystem == "Packagist"
    assert framework.hashes == ()
    assert comps["symfony/console@v5.0.8"].hashes == (Hash("SHA-1", "abcdef"),)
    assert comps["symfony/console@v5.0.8"].licenses == (
        License(expression="MIT OR GPL-2.0-or-later"),
    )
    assert edges(report) == {
        "Packagist:laravel/framework@v7.12.0": {"Packagist:symfony/console@v5.0.8"}
    }


# --- Gemfile.lock ------------------------------------------------------------------------

GEMFILE_LOCK = """\
GIT
  remote: https://github.com/org/private_gem.git
  revision: 0123456789abcdef
  specs:
    private_gem (0.1.0)

GEM
  remote: https://rubygems.org/
  specs:
    actionpack (6.1.7)
      rack (~> 2.0, >= 2.0.9)
      rack-test (>= 0.6.3)
    nokogiri (1.13.10-x86_64-linux)
      racc (~> 1.4)
    nokogiri (1.13.10-arm64-darwin)
      racc (~> 1.4)
    racc (1.6.2)
    rack (2.2.8)
    rack-test (2.1.0)
      rack (>= 1.3)

PLATFORMS
  arm64-darwin
  x86_64-linux

DEPENDENCIES
  actionpack (~> 6.1)
  nokogiri
  private_gem!

CHECKSUMS
  rack (2.2.8) sha256=abc123

BUNDLED WITH
   2.5.3
"""


def test_gemfile_lock() -> None:
    report = read("Gemfile.lock", {"Gemfile.lock": GEMFILE_LOCK})
    comps = by_name(report)
    assert {n: c.direct for n, c in comps.items()} == {
        "private_gem@0.1.0": True,
        "actionpack@6.1.7": True,
        "nokogiri@1.13.10": True,
        "racc@1.6.2": False,
        "rack@2.2.8": False,
        "rack-test@2.1.0": False,
    }
    assert comps["nokogiri@1.13.10"].purl == "pkg:gem/nokogiri@1.13.10?platform=x86_64-linux"
    assert comps["rack@2.2.8"].hashes == (Hash("SHA-256", "abc123"),)
    assert comps["rack@2.2.8"].ecosystem == "RubyGems"
    assert edges(report)["RubyGems:actionpack@6.1.7"] == {
        "RubyGems:rack@2.2.8",
        "RubyGems:rack-test@2.1.0",
    }


def test_gemfile_lock_error_names_the_line() -> None:
    broken = GEMFILE_LOCK.replace("    racc (1.6.2)", "    racc 1.6.2")
    with pytest.raises(LockfileError) as caught:
        read("Gemfile.lock", {"Gemfile.lock": broken})
    assert caught.value.location == "Gemfile.lock:17"


def fixtures() -> dict[str, Any]:
    """One of every lockfile type, for the tree tests."""
    return {
        "web/package-lock.json": json.dumps(PACKAGE_LOCK_V3),
        "requirements.txt": "Django==2.2.0\nflask>=1\n",
        "api/poetry.lock": POETRY_LOCK,
        "api/pyproject.toml": PYPROJECT,
        "tools/uv.lock": UV_LOCK,
        "svc/Pipfile.lock": json.dumps(PIPFILE_LOCK),
        "svc/Pipfile": PIPFILE,
        "go/go.mod": GO_MOD,
        "rust/Cargo.lock": CARGO_LOCK,
        "php/composer.lock": json.dumps(COMPOSER_LOCK),
        "ruby/Gemfile.lock": GEMFILE_LOCK,
    }
