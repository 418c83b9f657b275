"""Package names (PEP 503 / PEP 508), versions (PEP 440) and package URLs.

purls: ``pkg:pypi/<PEP 503 normalized name>@<PEP 440 normalized version>`` (the form OSV
advisories name PyPI packages in, so a ``MAL-`` advisory matches the upload); a generic
artifact is ``pkg:generic/<last path segment>``: the purl-spec's generic type has a name
and no namespace semantics, and the path's directories are the repository's layout, not
the artifact's identity (two repositories holding ``tool.tar.gz`` under different folders
hold the same tool). The purl's characters are percent-encoded as the purl-spec says.
"""

from __future__ import annotations

import re

from packageurl import PackageURL
from packaging.version import InvalidVersion, Version

_SEPARATORS = re.compile(r"[-_.]+")
# PEP 508's name: ASCII letters and digits, with ., _ and - inside.
_VALID_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
MAX_NAME_LENGTH = 200


def normalize_name(name: str) -> str:
    """PEP 503: runs of ``-``, ``_`` and ``.`` become one ``-``, lower case."""
    return _SEPARATORS.sub("-", name).lower()


def is_valid_name(name: str) -> bool:
    return len(name) <= MAX_NAME_LENGTH and _VALID_NAME.match(name) is not None


def is_normalized(name: str) -> bool:
    return normalize_name(name) == name


def canonical_version(version: str) -> str | None:
    """The PEP 440 normal form (``1.0-1`` → ``1.0.post1``), None when not a PEP 440 version."""
    try:
        return str(Version(version))
    except InvalidVersion:
        return None


def same_version(a: str, b: str) -> bool:
    """Whether two spellings name the same PEP 440 version (``1.0`` and ``1.0.0`` do)."""
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def pypi_purl(name: str, version: str) -> str:
    return PackageURL(
        type="pypi", name=normalize_name(name), version=canonical_version(version) or version
    ).to_string()


def generic_purl(path: str) -> str:
    return PackageURL(type="generic", name=path.rsplit("/", 1)[-1]).to_string()
