"""Where the bare mirror of a repository lives: ``<data_dir>/signature-verifier/mirrors/``,
one directory per repo key (``owner/name`` lower-cased, ``/`` kept as a directory level,
so names need no escaping: ``Repo`` allows only ``[A-Za-z0-9._-]`` on either side)."""

from __future__ import annotations

from pathlib import Path

from shared.settings import Settings


def mirrors_root(settings: Settings) -> Path:
    return Path(settings.data_dir).expanduser().resolve() / "signature-verifier" / "mirrors"


def mirror_path(settings: Settings, repo: str) -> Path:
    """The bare repository of ``repo`` (it may not exist yet)."""
    owner, name = repo.lower().split("/", 1)
    if owner in {".", ".."} or name in {".", ".."}:
        raise ValueError(f"not a repository name: {repo!r}")
    return mirrors_root(settings) / owner / f"{name}.git"
