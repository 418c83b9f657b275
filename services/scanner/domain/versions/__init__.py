"""Per-ecosystem version ordering: ``parse_version(ecosystem, version) -> VersionKey``.

A key is a plain, hashable tuple; keys of one ecosystem are totally ordered with ``<`` and
equal exactly when the ecosystem considers the versions equal. Matching compiles OSV range
events to keys once and bisects, so nothing here is called per comparison.

Library decision (measured with ``python -m tests.bench.versions_micro`` on the 2-core dev
machine; parses per second, single thread; "wrong" counts the tricky-case table entries the
candidate orders differently from the ecosystem's own tool):

=============  =========================  ===========  =====  ==========================
ecosystem      candidate                   parses/s     wrong  verdict
=============  =========================  ===========  =====  ==========================
PyPI           packaging.Version + legacy  ~335k        0      **used** (packaging 26)
PyPI           univers PypiVersion         ~38k         5      legacy versions refused
npm/crates/Go  own regex -> tuple          ~430k        0      **used**
npm/crates/Go  semver (python-semver 3)    ~95k         3      no ``v`` prefix, no Go tags
npm/crates/Go  univers SemverVersion       ~30k         4      coerces ``1.2`` and orders
                                                               by build metadata
Maven          own spec tokens -> tuple    ~120k        0      **used**
Maven          univers MavenVersion        ~40k         3      older port, no total order
RubyGems       own Gem::Version -> tuple   ~260k        0      **used**
RubyGems       univers RubygemsVersion     ~18k         0      correct, 14x slower, and
                                                               its objects are not tuples
Packagist      own Composer + PHP order    ~150k        0      **used**
Packagist      univers ComposerVersion     ~30k         6      plain SemVer coercion: wrong
                                                               for 4-part and ``-patch``
NuGet          own regex -> tuple          ~390k        0      **used**
NuGet          univers NugetVersion        ~35k         0      correct, ~11x slower
=============  =========================  ===========  =====  ==========================

So ``packaging`` is kept for PEP 440 (maintained, exact, fast since 24.x); everything else
is a small tuple builder here, because univers' classes are either wrong for the OSV
semantics (SemVer coercion, legacy PyPI) or an order of magnitude slower and not usable as
bisectable tuple keys. The figures are re-measured by the bench script; see its output.

Errors: an unparseable version raises ``InvalidVersion`` and an ecosystem without an ordering
raises ``UnsupportedEcosystem`` (both ``VersionError``). Nothing orders silently wrong.
"""

from __future__ import annotations

from ._base import (
    MAX_VERSION_LENGTH,
    InvalidVersion,
    Parser,
    UnsupportedEcosystem,
    VersionError,
    VersionKey,
)
from .maven import maven_key
from .packagist import composer_normalize, packagist_key
from .pypi import pypi_key
from .rubygems import rubygems_key
from .semver import crates_key, go_key, npm_key, nuget_key, semver_key

PARSERS: dict[str, Parser] = {
    "PyPI": pypi_key,
    "npm": npm_key,
    "Go": go_key,
    "Maven": maven_key,
    "crates.io": crates_key,
    "RubyGems": rubygems_key,
    "Packagist": packagist_key,
    "NuGet": nuget_key,
}

# Ecosystems whose own order is SemVer precedence, so an OSV ``SEMVER`` range on them is read
# with the ecosystem parser (which also accepts their spellings: Go's "v", Go release tags).
SEMVER_NATIVE = frozenset({"npm", "Go", "crates.io"})


def base_ecosystem(ecosystem: str) -> str:
    """``Maven:https://maven.google.com`` -> ``Maven``; ``Debian:11`` -> ``Debian``."""
    return ecosystem.split(":", 1)[0]


def parser_for(ecosystem: str) -> Parser:
    """The key function of ``ecosystem`` (suffixes such as ``:<repo-url>`` are ignored)."""
    parser = PARSERS.get(base_ecosystem(ecosystem))
    if parser is None:
        raise UnsupportedEcosystem(ecosystem)
    return parser


def parse_version(ecosystem: str, version: str) -> VersionKey:
    return parser_for(ecosystem)(version)


def compare_versions(ecosystem: str, a: str, b: str) -> int:
    """-1, 0 or 1, in ``ecosystem``'s order."""
    parser = parser_for(ecosystem)
    ka, kb = parser(a), parser(b)
    return (ka > kb) - (ka < kb)


__all__ = [
    "MAX_VERSION_LENGTH",
    "PARSERS",
    "SEMVER_NATIVE",
    "InvalidVersion",
    "Parser",
    "UnsupportedEcosystem",
    "VersionError",
    "VersionKey",
    "base_ecosystem",
    "compare_versions",
    "composer_normalize",
    "crates_key",
    "go_key",
    "maven_key",
    "npm_key",
    "nuget_key",
    "packagist_key",
    "parse_version",
    "parser_for",
    "pypi_key",
    "rubygems_key",
    "semver_key",
]
