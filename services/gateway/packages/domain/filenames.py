"""Distribution file names: wheels (PEP 427 / 491), sdists (PEP 625 ``.tar.gz``, and the
legacy ``.zip`` and un-normalized names PyPI still serves).

A wheel's name is unambiguous (its parts are ``-``-separated and the name has no ``-``).
A legacy sdist's is not (``foo-bar-1.0-1.tar.gz``): the upload form's ``name`` says where
the name ends; without it the last ``-`` does, as ``packaging`` and pip assume.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from services.gateway.packages.domain.errors import InvalidDistribution
from services.gateway.packages.domain.names import canonical_version, is_valid_name, normalize_name

SDIST_SUFFIXES = (".tar.gz", ".zip")
WHEEL_SUFFIX = ".whl"
DistKind = Literal["wheel", "sdist"]


@dataclass(frozen=True, kw_only=True)
class DistFilename:
    filename: str
    # The name as spelled in the file name (a wheel escapes '-' as '_').
    name: str
    version: str
    kind: DistKind
    # sdists: ".tar.gz" or ".zip"; wheels: ".whl".
    suffix: str

    @property
    def normalized_name(self) -> str:
        return normalize_name(self.name)

    @property
    def canonical_version(self) -> str:
        return canonical_version(self.version) or self.version


def parse_dist_filename(filename: str, *, name_hint: str | None = None) -> DistFilename:
    """What ``filename`` says it is; 400 ``invalid_distribution`` for anything else."""
    if filename.endswith(WHEEL_SUFFIX):
        return _wheel(filename)
    for suffix in SDIST_SUFFIXES:
        if filename.endswith(suffix):
            return _sdist(filename, suffix, name_hint)
    raise InvalidDistribution(
        f"{filename!r} is neither a wheel (.whl) nor a source distribution (.tar.gz, .zip)"
    )


def _wheel(filename: str) -> DistFilename:
    try:
        parse_wheel_filename(filename)
    except InvalidWheelFilename as exc:
        raise InvalidDistribution(str(exc)) from None
    name, version = filename[: -len(WHEEL_SUFFIX)].split("-")[:2]
    return DistFilename(
        filename=filename, name=name, version=version, kind="wheel", suffix=WHEEL_SUFFIX
    )


def _sdist(filename: str, suffix: str, name_hint: str | None) -> DistFilename:
    stem = filename[: -len(suffix)]
    split = _split_by_hint(stem, name_hint) if name_hint else None
    if split is None:
        name, sep, version = stem.rpartition("-")
        if not sep:
            raise InvalidDistribution(f"{filename!r}: no '-' between name and version")
    else:
        name, version = split
    if not is_valid_name(name):
        raise InvalidDistribution(f"{filename!r}: {name!r} is not a valid project name")
    if canonical_version(version) is None:
        raise InvalidDistribution(f"{filename!r}: {version!r} is not a PEP 440 version")
    return DistFilename(filename=filename, name=name, version=version, kind="sdist", suffix=suffix)


def _split_by_hint(stem: str, name_hint: str) -> tuple[str, str] | None:
    """(name, version) with the name part the one that normalizes as ``name_hint`` does."""
    wanted = normalize_name(name_hint)
    for index, char in enumerate(stem):
        if char == "-" and normalize_name(stem[:index]) == wanted:
            return stem[:index], stem[index + 1 :]
    return None
