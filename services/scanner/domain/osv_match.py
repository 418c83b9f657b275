"""Is this package version affected? OSV range semantics, exactly, per ecosystem order.

The spec's evaluation (https://ossf.github.io/osv-schema/#evaluation) walks a range's events
sorted by version: ``introduced`` at or below ``v`` makes it vulnerable, ``fixed`` at or
below ``v`` and ``last_affected`` strictly below ``v`` make it safe, the last event that
fires wins; a range only counts below one of its ``limit`` events (``*`` or none: no limit);
a version listed in ``versions`` is affected whatever the ranges say.

Compiled form: each event becomes a threshold ``(key, 0)`` (fires for ``v >= key``) or
``(key, 1)`` for ``last_affected`` (fires for ``v > key``), ``introduced: "0"`` becomes
``((), 0)`` which is below every key. Sorted thresholds plus the state after each one make
the evaluation a single ``bisect``. The spec leaves the order of events *at the same version*
open; here the sort is stable, so events at one version keep their order in the array and
the last one wins, as OSV.dev's own enumeration does (PYSEC-2023-72 lists the versions that
order produces): ``introduced: X`` then ``fixed: X`` is the empty interval ``[X, X)``, while
``fixed: X`` then ``introduced: X`` joins ``[a, X)`` and ``[X, b)``.

What cannot be evaluated is said, never treated as "not affected": ``GIT`` ranges (commit
hashes, unless the entry enumerates ``versions``, which the spec requires beside GIT ranges
and which then stands in for them), unknown range types, ecosystems without an ordering
here (``Debian:11`` and friends), event versions that do not parse, and component versions
that do not parse.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Literal

import msgspec

from .osv import INTRODUCED_ZERO, Affected, Range, range_parser_name
from .versions import PARSERS, Parser, VersionError, VersionKey, base_ecosystem, semver_key

Status = Literal["affected", "not_affected", "not_evaluated"]


class Verdict(msgspec.Struct, frozen=True, omit_defaults=True):
    status: Status
    reason: str | None = None


AFFECTED = Verdict("affected")
NOT_AFFECTED = Verdict("not_affected")


def not_evaluated(reason: str) -> Verdict:
    return Verdict("not_evaluated", reason)


_BELOW_ALL: VersionKey = ()  # () < every non-empty tuple key


def _parser(name: str) -> Parser:
    return semver_key if name == "SEMVER" else PARSERS[name]


class CompiledRange:
    """One evaluable range: thresholds, the state after each, and the upper limit."""

    __slots__ = ("limit", "parser_name", "states", "thresholds")

    def __init__(
        self,
        parser_name: str,
        thresholds: list[tuple[VersionKey, int]],
        states: list[bool],
        limit: VersionKey | None,
    ) -> None:
        self.parser_name = parser_name
        self.thresholds = thresholds
        self.states = states
        self.limit = limit

    def contains(self, key: VersionKey) -> bool:
        if self.limit is not None and not key < self.limit:
            return False
        index = bisect_right(self.thresholds, (key, 0))
        return index > 0 and self.states[index - 1]


def compile_range(rng: Range, parser_name: str) -> CompiledRange:
    """``VersionError`` when an event version does not parse."""
    parse = _parser(parser_name)
    points: list[tuple[tuple[VersionKey, int], bool]] = []
    limits: list[VersionKey] = []
    unlimited = False
    for event in rng.events:
        for kind, version in event.kinds():
            if kind == "limit":
                if "*" in version:
                    unlimited = True
                else:
                    limits.append(parse(version))
            elif kind == "introduced":
                key = _BELOW_ALL if version == INTRODUCED_ZERO else parse(version)
                points.append(((key, 0), True))
            elif kind == "fixed":
                points.append(((parse(version), 0), False))
            else:  # last_affected: still affected at the version itself
                points.append(((parse(version), 1), False))
    points.sort(key=lambda p: p[0])  # stable: events at one version keep their array order
    thresholds: list[tuple[VersionKey, int]] = []
    states: list[bool] = []
    for threshold, state in points:
        if thresholds and thresholds[-1] == threshold:
            states[-1] = state  # the last event at one threshold decides
        else:
            thresholds.append(threshold)
            states.append(state)
    limit = max(limits) if limits and not unlimited else None
    return CompiledRange(parser_name, thresholds, states, limit)


class CompiledAffected:
    """An ``affected[]`` entry ready for matching; build with ``compile_affected``."""

    __slots__ = ("ecosystem", "gaps", "ranges", "version_keys", "version_strings")

    def __init__(
        self,
        ecosystem: str,
        ranges: tuple[CompiledRange, ...],
        version_strings: frozenset[str],
        version_keys: frozenset[VersionKey],
        gaps: tuple[str, ...],
    ) -> None:
        self.ecosystem = ecosystem
        self.ranges = ranges
        self.version_strings = version_strings
        self.version_keys = version_keys
        self.gaps = gaps  # why some of this entry cannot be evaluated from a version

    def verdict(self, version: str | None, keys: dict[str, VersionKey | VersionError]) -> Verdict:
        """``keys`` caches the component version's key per parser (shared across entries)."""
        if version is None:
            return not_evaluated("the component has no version")
        if version in self.version_strings:
            return AFFECTED
        gaps = list(self.gaps)
        if self.version_keys and self.ecosystem in PARSERS:
            key = _key_of(version, self.ecosystem, keys)
            if not isinstance(key, VersionError) and key in self.version_keys:
                return AFFECTED
        for rng in self.ranges:
            key = _key_of(version, rng.parser_name, keys)
            if isinstance(key, VersionError):
                gaps.append(str(key))
            elif rng.contains(key):
                return AFFECTED
        if gaps:
            return not_evaluated("; ".join(dict.fromkeys(gaps)))
        return NOT_AFFECTED


def _key_of(
    version: str, parser_name: str, keys: dict[str, VersionKey | VersionError]
) -> VersionKey | VersionError:
    cached = keys.get(parser_name)
    if cached is None:
        try:
            cached = _parser(parser_name)(version)
        except VersionError as exc:
            cached = exc
        keys[parser_name] = cached
    return cached


def compile_affected(affected: Affected, ecosystem: str | None = None) -> CompiledAffected:
    """Pre-parse every event and enumerated version of one ``affected[]`` entry.

    ``ecosystem`` defaults to the entry's package ecosystem. Nothing raises: what cannot be
    compiled is kept as a gap and reported as "not evaluated" by ``verdict``.
    """
    eco = ecosystem or (affected.package.ecosystem if affected.package else "")
    base = base_ecosystem(eco)
    gaps: list[str] = []
    ranges: list[CompiledRange] = []
    for rng in affected.ranges:
        if rng.type == "GIT":
            if not affected.versions:
                gaps.append("a GIT range (commits) cannot be evaluated from a version")
            continue
        if rng.type not in ("SEMVER", "ECOSYSTEM"):
            gaps.append(f"range type {rng.type!r} is not known")
            continue
        parser_name = range_parser_name(eco, rng.type)
        if parser_name is None:
            gaps.append(f"no version ordering for ecosystem {eco!r}")
            continue
        try:
            ranges.append(compile_range(rng, parser_name))
        except VersionError as exc:
            gaps.append(f"a range event does not parse: {exc}")
    version_keys: set[VersionKey] = set()
    if affected.versions and base in PARSERS:
        parse = PARSERS[base]
        for listed in affected.versions:
            try:
                version_keys.add(parse(listed))
            except VersionError:
                continue  # the string itself still matches exactly
    elif affected.versions and not ranges and base not in PARSERS:
        gaps.append(f"no version ordering for ecosystem {eco!r}")
    return CompiledAffected(
        base, tuple(ranges), frozenset(affected.versions), frozenset(version_keys), tuple(gaps)
    )


def affected_verdict(affected: Affected, ecosystem: str, version: str | None) -> Verdict:
    """The verdict of one ``affected[]`` entry for ``version`` in ``ecosystem``'s order.

    Convenience over ``compile_affected(...).verdict``; matching many components goes
    through ``AdvisoryIndex``, which compiles each entry once.
    """
    return compile_affected(affected, ecosystem).verdict(version, {})
