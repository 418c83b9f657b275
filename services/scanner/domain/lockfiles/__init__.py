"""Lockfile readers over a ``FileTree``: package-lock.json (v1-v3), requirements*.txt
(pinned), poetry.lock, uv.lock, Pipfile.lock, go.mod, Cargo.lock, composer.lock and
Gemfile.lock. ``scan_tree`` finds them anywhere in a tree (outside node_modules, .git and
vendor) and merges what they say."""

from __future__ import annotations

from .base import LockfileReport
from .scan import READERS, LockfileFailure, TreeScan, find_lockfiles, reader_for, scan_tree
from .tree import DictTree, FileTree, ZipTree

__all__ = [
    "READERS",
    "DictTree",
    "FileTree",
    "LockfileFailure",
    "LockfileReport",
    "TreeScan",
    "ZipTree",
    "find_lockfiles",
    "reader_for",
    "scan_tree",
]
