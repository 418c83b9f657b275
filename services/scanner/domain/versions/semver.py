"""SemVer 2.0 precedence, and the ecosystems that order by it: npm, crates.io, Go, NuGet.

Key shape: ``(major, minor, patch, pre)`` where ``pre`` is ``(1,)`` for a release and
``(0, id, id, ...)`` for a pre-release; each identifier is ``(0, int)`` (numeric) or
``(1, str)`` (alphanumeric). Tuple order is then exactly SemVer section 11: numeric
identifiers below alphanumeric ones, a longer identifier list above its prefix, any
pre-release below the release. Build metadata never takes part (it is parsed and dropped).
"""

from __future__ import annotations

import re

from ._base import InvalidVersion, VersionKey, precheck

_RELEASE: tuple[int] = (1,)

# Lenient where leniency cannot change an order: an optional "v" (Go, and tags people paste),
# leading zeros in numbers. Strict where it could: exactly three numeric parts.
_SEMVER = re.compile(
    r"[vV=]?(?P<core>\d+\.\d+\.\d+)"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)


def _prerelease_key(pre: str, *, fold_case: bool) -> VersionKey:
    ids: list[object] = [0]
    for ident in pre.split("."):
        if ident.isdigit():
            ids.append((0, int(ident)))
        else:
            ids.append((1, ident.lower() if fold_case else ident))
    return tuple(ids)


def _semver(ecosystem: str, version: str) -> VersionKey:
    text = precheck(ecosystem, version)
    match = _SEMVER.fullmatch(text)
    if match is None:
        raise InvalidVersion(ecosystem, version, "not MAJOR.MINOR.PATCH[-PRE][+BUILD]")
    major, minor, patch = (int(p) for p in match["core"].split("."))
    pre = match["pre"]
    return (major, minor, patch, _RELEASE if pre is None else _prerelease_key(pre, fold_case=False))


def semver_key(version: str) -> VersionKey:
    """SemVer 2.0 (the OSV ``SEMVER`` range type)."""
    return _semver("SEMVER", version)


def npm_key(version: str) -> VersionKey:
    """node-semver: SemVer 2.0 precedence, a leading ``v``/``=`` tolerated, build ignored."""
    return _semver("npm", version)


def crates_key(version: str) -> VersionKey:
    """Cargo's ``semver`` crate ordering for matching purposes (build metadata ignored)."""
    return _semver("crates.io", version)


# Go release tags as the toolchain spells them (go1.21.4, go1.21rc1, go1.9beta2, go1.21).
_GO_TAG = re.compile(r"go(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:(beta|rc)(\d+))?")
# Two- or one-part numbers ("1.21", "1") only appear for the stdlib/toolchain pseudo-modules.
_GO_SHORT = re.compile(r"v?(\d+)(?:\.(\d+))?")


def go_key(version: str) -> VersionKey:
    """Go module versions (golang.org/x/mod/semver order) and Go release tags.

    ``v1.2.3`` and ``1.2.3`` are the same version; pseudo-versions
    (``v0.0.0-20191109021931-daa7c04131f5``) are pre-releases and order by their timestamp;
    ``+incompatible`` is build metadata and does not take part. The ``stdlib`` and
    ``toolchain`` modules are versioned by Go releases, which OSV writes as SemVer
    (``1.21.0-rc.1``) and SBOMs often write as tags (``go1.21rc1``): tags map the way
    golang.org/x/vuln maps them, so ``go1.21`` is ``1.21.0`` and ``go1.21rc1`` is
    ``1.21.0-rc.1``.
    """
    text = precheck("Go", version)
    tag = _GO_TAG.fullmatch(text)
    if tag is not None:
        major, minor, patch, kind, num = tag.groups()
        pre: VersionKey = _RELEASE if kind is None else (0, (1, kind), (0, int(num)))
        return (int(major), int(minor or 0), int(patch or 0), pre)
    short = _GO_SHORT.fullmatch(text)
    if short is not None:
        return (int(short[1]), int(short[2] or 0), 0, _RELEASE)
    return _semver("Go", text)


_NUGET = re.compile(
    r"[vV]?(?P<nums>\d+(?:\.\d+){0,3})"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)


def nuget_key(version: str) -> VersionKey:
    """NuGetVersion order: up to four numeric parts (missing ones are 0, so ``1.0`` equals
    ``1.0.0.0``), release labels compared like SemVer but case-insensitively, metadata ignored.
    """
    text = precheck("NuGet", version)
    match = _NUGET.fullmatch(text)
    if match is None:
        raise InvalidVersion("NuGet", version, "not N[.N[.N[.N]]][-LABEL][+METADATA]")
    nums = [int(p) for p in match["nums"].split(".")]
    nums.extend([0] * (4 - len(nums)))
    pre = match["pre"]
    return (*nums, _RELEASE if pre is None else _prerelease_key(pre, fold_case=True))
