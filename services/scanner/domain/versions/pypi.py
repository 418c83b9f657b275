"""PyPI: PEP 440 through ``packaging``, with setuptools' legacy order for everything else.

OSV's PyPI data predates PEP 440 in places (``0.3m1``, ``2.0.0-final``, ``trunk``, dates):
OSV.dev itself orders those with the legacy scheme that ``packaging`` < 22 called
``LegacyVersion``: every legacy version sorts before every PEP 440 version, and legacy
versions order among themselves by setuptools' historical part rules. We do the same, so a
legacy version gets a deterministic place instead of an error or a guess.

Key shape: ``(1, packaging.version.Version)`` or ``(0, (part, part, ...))``. The leading
integer decides mixed comparisons, so a ``Version`` is never compared with a tuple.
"""

from __future__ import annotations

import re

from packaging.version import InvalidVersion as PackagingInvalidVersion
from packaging.version import Version

from ._base import VersionKey, precheck

_LEGACY_PART = re.compile(r"(\d+|[a-z]+|\.|-)")
_LEGACY_REPLACE = {"pre": "c", "preview": "c", "-": "final-", "rc": "c", "dev": "@"}


def _legacy_parts(version: str) -> tuple[str, ...]:
    parts: list[str] = []
    for raw in (*_LEGACY_PART.split(version.lower()), "final"):
        part = _LEGACY_REPLACE.get(raw, raw)
        if not part or part == ".":
            continue
        part = part.zfill(8) if part[0].isdigit() else "*" + part
        if part.startswith("*"):
            if part < "*final":  # a pre-release tag drops the "-" that introduced it
                while parts and parts[-1] == "*final-":
                    parts.pop()
            while parts and parts[-1] == "00000000":  # 1.0 == 1.0.0 within a series
                parts.pop()
        parts.append(part)
    return tuple(parts)


def pypi_key(version: str) -> VersionKey:
    text = precheck("PyPI", version)
    try:
        return (1, Version(text))
    except PackagingInvalidVersion:
        return (0, _legacy_parts(text))


def is_pep440(version: str) -> bool:
    """True when ``version`` is a PEP 440 version (as opposed to a legacy one)."""
    return bool(pypi_key(version)[0] == 1)
