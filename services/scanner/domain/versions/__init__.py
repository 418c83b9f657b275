"""Per-ecosystem version ordering: ``parse_version(ecosystem, version) -> VersionKey``.

A key is a plain, hashable tuple; keys of one ecosystem are totally ordered with ``<`` and
equal exactly when the ecosystem considers the versions equal. Matching compiles OSV range
events to keys once and bisects, so nothing here is called per comparison.

Library decision, measured with ``python -m tests.bench.versions_micro --seconds 1`` on the
2-core dev machine (shared and noisy: treat +-30% as noise). "parse+cmp/s" parses realistic
strings (the OSV data for PyPI and Go, generated shapes otherwise) and compares each once
(some candidates parse lazily on compare); "wrong" counts the pairs of the tricky-case table
(tests/unit/version_cases.py) a candidate orders differently from the ecosystem's own tool,
a refusal counting as wrong.

=========  ===========================  ===========  ======  ===================================
ecosystem  candidate                    parse+cmp/s  wrong   why not / why
=========  ===========================  ===========  ======  ===================================
PyPI       **packaging + legacy order**     441k     0/30    used: packaging is exact and fast
PyPI       packaging.Version alone          334k     8/30    refuses legacy versions in OSV data
PyPI       univers PypiVersion              149k     8/30    same refusal, slower
npm        **regex -> tuple**               549k     0/17    used
npm        python-semver 3                  231k     1/17    no leading "v"
npm        univers SemverVersion             60k     2/17    coerces, orders by build metadata
Go         **regex -> tuple**               494k     0/22    used
Go         python-semver 3                     -    22/22    refuses the "v" prefix outright
Go         univers GolangVersion             61k    12/22    no go1.21rc1 tags, build metadata
crates.io  **regex -> tuple**               494k     0/7     used
crates.io  python-semver 3                  211k     0/7     correct, 2.3x slower, not a tuple
crates.io  univers SemverVersion             56k     1/7     orders by build metadata
Maven      **spec tokens -> tuple**         162k     0/75    used
Maven      univers MavenVersion              75k     2/75    older port; no total order
RubyGems   **Gem::Version -> tuple**        260k     0/21    used
RubyGems   univers RubygemsVersion           49k     0/21    correct, 5x slower, not a tuple
Packagist  **Composer + PHP order**         134k     0/22    used
Packagist  univers ComposerVersion           67k    10/22    plain SemVer coercion: 4-part,
                                                             -patch, stability words wrong
NuGet      **regex -> tuple**               547k     0/15    used
NuGet      univers NugetVersion              33k     0/15    correct, 17x slower
=========  ===========================  ===========  ======  ===================================

So ``packaging`` stays for PEP 440 (maintained, exact, and the fastest candidate); the other
ecosystems are small tuple builders here, because univers' classes are either wrong for OSV's
semantics or several times slower, and none of the libraries yields bisectable tuple keys.

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
