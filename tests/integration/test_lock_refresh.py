"""`make lock-check` / `deploy/lock/refresh.sh`: the documented way to refresh the lock works,
and it notices a pyproject.toml the lock no longer satisfies. Resolves against the package
index with the uv pinned in deploy/lock/tools.lock (installed on first use into .venv-lock).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FILES = ("pyproject.toml", "requirements.lock", "requirements-dev.lock", "deploy/lock")


def copy_inputs(target: Path) -> None:
    for name in FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name)
        else:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def run_refresh(where: Path, mode: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LOCK_TOOLS_VENV": str(ROOT / ".venv-lock"), "PYTHON": sys.executable}
    return subprocess.run(
        ["bash", str(where / "deploy/lock/refresh.sh"), mode],
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_committed_locks_match_pyproject(tmp_path: Path) -> None:
    copy_inputs(tmp_path)
    result = run_refresh(tmp_path, "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "lock files match pyproject.toml" in result.stdout


def test_a_dependency_missing_from_the_lock_is_found_and_refresh_adds_it(tmp_path: Path) -> None:
    copy_inputs(tmp_path)
    pyproject = tmp_path / "pyproject.toml"
    text = pyproject.read_text()
    pyproject.write_text(text.replace('"jinja2>=3.1",', '"jinja2>=3.1",\n    "six>=1.16",', 1))
    stale = run_refresh(tmp_path, "check")
    assert stale.returncode == 1
    assert "does not match pyproject.toml" in stale.stderr

    refreshed = run_refresh(tmp_path, "refresh")
    assert refreshed.returncode == 0, refreshed.stdout + refreshed.stderr
    for lock in ("requirements.lock", "requirements-dev.lock"):
        assert "\nsix==" in (tmp_path / lock).read_text()
    assert run_refresh(tmp_path, "check").returncode == 0
