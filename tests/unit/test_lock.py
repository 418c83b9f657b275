"""The lock files: every dependency pinned exactly, with hashes, inside pyproject.toml's ranges.

Offline checks of the files themselves; ``test_lock_refresh.py`` resolves them again with the
pinned uv (`make lock-check`).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def pins(lock: Path) -> dict[str, tuple[str, int]]:
    """name → (version, number of hashes) of every requirement in a pip lock file."""
    found: dict[str, tuple[str, int]] = {}
    current = ""
    for line in lock.read_text().splitlines():
        match = _PIN.match(line)
        if match:
            current = canonicalize_name(match.group(1))
            found[current] = (match.group(2), 0)
        elif line.strip().startswith("--hash=sha256:") and current:
            version, hashes = found[current]
            found[current] = (version, hashes + 1)
    return found


def project() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]  # type: ignore[no-any-return]


def requirements(*, dev: bool) -> list[Requirement]:
    meta = project()
    listed = list(meta["dependencies"])  # type: ignore[call-overload]
    if dev:
        listed += meta["optional-dependencies"]["dev"]  # type: ignore[index]
    build = (ROOT / "deploy/lock/build.in").read_text().splitlines()
    listed += [line for line in build if line.strip() and not line.startswith("#")]
    return [Requirement(text) for text in listed]


@pytest.mark.parametrize(
    ("lock", "dev"), [("requirements-dev.lock", True), ("requirements.lock", False)]
)
def test_every_dependency_is_pinned_with_hashes_inside_its_range(lock: str, dev: bool) -> None:
    pinned = pins(ROOT / lock)
    assert pinned, f"{lock} pins nothing"
    for requirement in requirements(dev=dev):
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{requirement.name} is not in {lock}: run `make lock`"
        version, _hashes = pinned[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{lock} pins {name}=={version}, outside pyproject.toml's {requirement}"
        )
    unhashed = sorted(name for name, (_, hashes) in pinned.items() if hashes == 0)
    assert not unhashed, f"pinned without a hash in {lock}: {unhashed}"


def test_the_runtime_lock_agrees_with_the_dev_lock() -> None:
    runtime = pins(ROOT / "requirements.lock")
    dev = pins(ROOT / "requirements-dev.lock")
    differing = {
        name: (v, dev.get(name, (None,))[0])
        for name, (v, _) in runtime.items()
        if dev.get(name, (None,))[0] != v
    }
    assert not differing, f"runtime and dev locks pin different versions: {differing}"


def test_the_build_backend_is_the_one_pyproject_names() -> None:
    build_system = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]
    locked = [
        line.strip()
        for line in (ROOT / "deploy/lock/build.in").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert locked == build_system["requires"]


def test_every_install_goes_through_the_lock() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "--require-hashes --no-deps" in makefile and "LOCK := requirements-dev.lock" in makefile
    assert "--no-build-isolation -e ." in makefile
    dockerfile = (ROOT / "deploy/Dockerfile").read_text()
    assert "pip install --require-hashes --no-deps -r requirements.lock" in dockerfile
    assert "--no-build-isolation" in dockerfile
    # No other pip install in either: nothing resolved afresh on a new machine.
    for text in (makefile, dockerfile):
        for line in text.splitlines():
            if "pip install" in line and "requirements" not in line and "-r" not in line:
                assert "--no-deps" in line, f"an install outside the lock: {line.strip()}"
