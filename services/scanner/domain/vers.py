"""``vers:`` version ranges (purl-spec VERSION-RANGE-SPEC), evaluated with the scanner's own
version orderings (``domain.versions``: PEP 440 for pypi, and so on).

``vers:<scheme>/<constraint>|<constraint>…`` where a constraint is ``*`` (every version) or
a comparator (``=`` when omitted, ``!=``, ``<``, ``<=``, ``>``, ``>=``) and a version. The
range is parsed once (:func:`parse_vers`, which refuses a range it cannot evaluate, so a
block never matches by accident) and then asked with :meth:`VersRange.contains`.

Containment follows the spec's algorithm: an ``=`` constraint equal to the version matches,
a ``!=`` equal to it excludes it; the ordering constraints, sorted by version, are read in
contiguous pairs (``>=1.0|<2.0`` is an interval, ``<1.0|>=2.0`` two open ends). A range made
of ``!=`` constraints only contains every other version (the spec leaves it unsaid; that is
what it plainly means).
"""

from __future__ import annotations

import itertools
from urllib.parse import unquote

import msgspec

from .errors import ScannerError
from .versions import VersionError, VersionKey, parser_for, semver_key
from .versions._base import Parser
from .versions.pypi import is_pep440

# vers scheme -> the ecosystem whose ordering it uses (the purl types, and plain semver).
_SCHEME_ECOSYSTEMS = {
    "pypi": "PyPI",
    "npm": "npm",
    "golang": "Go",
    "maven": "Maven",
    "cargo": "crates.io",
    "gem": "RubyGems",
    "composer": "Packagist",
    "nuget": "NuGet",
}
SCHEMES = frozenset((*_SCHEME_ECOSYSTEMS, "semver"))
_COMPARATORS = ("<=", ">=", "!=", "<", ">", "=")
_MAX_CONSTRAINTS = 100


class InvalidVers(ScannerError):
    code, status, title = "invalid_vers", 422, "Not a version range this registry can evaluate"


class Constraint(msgspec.Struct, frozen=True):
    comparator: str
    version: str
    key: VersionKey

    def satisfied_by(self, key: VersionKey) -> bool:
        if self.comparator == "<":
            return key < self.key
        if self.comparator == "<=":
            return key <= self.key
        if self.comparator == ">":
            return key > self.key
        if self.comparator == ">=":
            return key >= self.key
        if self.comparator == "!=":
            return key != self.key
        return key == self.key


class VersRange(msgspec.Struct, frozen=True):
    scheme: str
    any_version: bool
    constraints: tuple[Constraint, ...]

    def key_of(self, version: str) -> VersionKey | None:
        try:
            return scheme_parser(self.scheme)(version)
        except VersionError:
            return None

    def contains(self, version: str) -> bool:
        """Whether ``version`` is in the range (a version the scheme cannot read is not)."""
        if self.any_version:
            return True
        key = self.key_of(version)
        if key is None:
            return False
        ordering: list[Constraint] = []
        excluded_only = True
        for constraint in self.constraints:
            if constraint.comparator == "=":
                excluded_only = False
                if key == constraint.key:
                    return True
            elif constraint.comparator == "!=":
                if key == constraint.key:
                    return False
            else:
                excluded_only = False
                ordering.append(constraint)
        if not ordering:
            return excluded_only
        if len(ordering) == 1:
            return ordering[0].satisfied_by(key)
        ordering.sort(key=lambda c: c.key)
        last = len(ordering) - 2
        for index, (current, following) in enumerate(itertools.pairwise(ordering)):
            if index == 0 and current.comparator in ("<", "<=") and current.satisfied_by(key):
                return True
            if (
                index == last
                and following.comparator in (">", ">=")
                and following.satisfied_by(key)
            ):
                return True
            if (
                current.comparator in (">", ">=")
                and following.comparator in ("<", "<=")
                and current.satisfied_by(key)
                and following.satisfied_by(key)
            ):
                return True
        return False


def scheme_parser(scheme: str) -> Parser:
    if scheme == "semver":
        return semver_key
    ecosystem = _SCHEME_ECOSYSTEMS.get(scheme)
    if ecosystem is None:
        raise InvalidVers(f"no version ordering for the vers scheme {scheme!r}")
    return parser_for(ecosystem)


def parse_vers(text: str) -> VersRange:
    """The range ``text`` names; :class:`InvalidVers` saying why when it cannot be evaluated
    (unknown scheme, a constraint without a version, a version the scheme cannot read)."""
    head, colon, rest = text.strip().partition(":")
    if not colon or head.lower() != "vers":
        raise InvalidVers("a version range starts with 'vers:'")
    scheme, slash, body = rest.partition("/")
    scheme = scheme.lower()
    if not slash or not scheme:
        raise InvalidVers("a version range reads vers:<scheme>/<constraints>")
    parser = scheme_parser(scheme)
    body = "".join(body.split())  # the spec ignores whitespace
    if not body:
        raise InvalidVers("a version range has at least one constraint")
    if body == "*":
        return VersRange(scheme=scheme, any_version=True, constraints=())
    parts = body.split("|")
    if len(parts) > _MAX_CONSTRAINTS:
        raise InvalidVers(f"at most {_MAX_CONSTRAINTS} constraints")
    constraints = []
    for part in parts:
        if part == "*":
            raise InvalidVers("'*' stands alone: vers:<scheme>/*")
        comparator = next((c for c in _COMPARATORS if part.startswith(c)), "=")
        raw = part[len(comparator) :] if part.startswith(comparator) else part
        version = unquote(raw)
        if not version:
            raise InvalidVers(f"constraint {part!r} has no version")
        try:
            key = parser(version)
        except VersionError as exc:
            raise InvalidVers(f"constraint {part!r}: {exc.detail}") from None
        if scheme == "pypi" and not is_pep440(version):
            # The ordering reads legacy versions (for OSV's old data); a range someone writes
            # now with one is a typo, which would silently match the wrong versions.
            raise InvalidVers(f"constraint {part!r}: {version!r} is not a PEP 440 version")
        constraints.append(Constraint(comparator, version, key))
    return VersRange(scheme=scheme, any_version=False, constraints=tuple(constraints))
