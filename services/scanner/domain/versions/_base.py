"""Types and errors shared by the per-ecosystem version parsers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import ScannerError

# An opaque, totally ordered, hashable sort key. Keys are only ever compared with keys of the
# same ecosystem (the same parser); every parser builds plain tuples whose positions never mix
# incomparable types, so ``<`` never raises and ``==`` means "the same version" in that scheme.
VersionKey = tuple[Any, ...]
Parser = Callable[[str], VersionKey]

# Longer strings are refused before any regex runs: no registry allows versions near this long,
# and it bounds the work an absurd input can cause.
MAX_VERSION_LENGTH = 256


class VersionError(ScannerError):
    """Root of the version errors: permanent, the same string always fails the same way."""

    code, status, title = "version_error", 422, "Version cannot be ordered"


class InvalidVersion(VersionError):
    """A version string that the ecosystem's grammar does not accept."""

    code, status, title = "version_invalid", 422, "Invalid version"

    def __init__(self, ecosystem: str, version: str, reason: str) -> None:
        shown = version if len(version) <= 80 else version[:77] + "..."
        super().__init__(f"{ecosystem} version {shown!r}: {reason}")
        self.ecosystem = ecosystem
        self.version = version
        self.reason = reason


class UnsupportedEcosystem(VersionError):
    """No ordering is implemented for this ecosystem (matching reports 'not evaluated')."""

    code, status, title = "ecosystem_unsupported", 422, "Ecosystem not supported"

    def __init__(self, ecosystem: str) -> None:
        super().__init__(f"no version ordering for ecosystem {ecosystem!r}")
        self.ecosystem = ecosystem


def precheck(ecosystem: str, version: str) -> str:
    """Strip surrounding whitespace; refuse empty and absurdly long strings."""
    if len(version) > MAX_VERSION_LENGTH:
        raise InvalidVersion(ecosystem, version, f"longer than {MAX_VERSION_LENGTH} characters")
    stripped = version.strip()
    if not stripped:
        raise InvalidVersion(ecosystem, version, "empty")
    return stripped
