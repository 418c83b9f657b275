"""In-memory advisory index: which advisories affect these components, grouped by weakness.

- Keyed by package id ``(ecosystem, key)`` (``package_ids``), so a component costs one dict
  lookup; a package's entries are compiled (every event version pre-parsed) on first use
  and cached, so matching is a bisect per range, and loading 100k advisories parses nothing.
- ``upsert`` is incremental by ``modified``: an older or equal copy of a known advisory is
  ignored, a newer one replaces it. A ``withdrawn`` advisory stops matching (a tombstone
  keeps its ``modified`` so a stale re-import cannot bring it back).
- Aliases: ids are grouped with union-find over every active advisory's ``id`` and
  ``aliases`` (symmetric and transitive, as the OSV spec defines them; ``related`` does not
  join). The group id is chosen from the members alone, so it does not depend on import
  order: the lowest CVE id (by year, then number) when the group has one, because CVE is the
  id every database cross-references, else the lexicographically lowest id. A new alias can
  merge groups and so change a group's id; findings keep the advisory ids too.

Measured (``python -m tests.bench.match_micro``, 2-core dev machine): 103,447 advisories
(3,461 real PyPI + Go, the rest synthetic) load in ~0.55 s; matching 10,000 purl components
takes ~0.24 s cold (compiling every package it touches) and ~0.15 s warm; the loaded index
grows max RSS by ~90 MB.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Literal

import msgspec

from .model import Component
from .osv import Advisory, Affected
from .osv_match import AFFECTED, CompiledAffected, Verdict, compile_affected, not_evaluated
from .package_ids import PackageId, component_package, package_id
from .versions import VersionError, VersionKey

UpsertOutcome = Literal["inserted", "updated", "unchanged", "stale", "withdrawn"]
_CVE = re.compile(r"CVE-(\d{4})-(\d+)")


class Match(msgspec.Struct, frozen=True, gc=False):
    """One (component, weakness) pair that is affected or could not be evaluated."""

    component_ref: str
    group_id: str
    advisory_ids: tuple[str, ...]
    verdict: Verdict


class _Record(msgspec.Struct, frozen=True, gc=False):
    id: str
    modified: datetime
    withdrawn: bool
    aliases: tuple[str, ...]
    packages: tuple[PackageId, ...]


def canonical_group_id(members: Iterable[str]) -> str:
    """The lowest CVE id among ``members`` (numerically), else the lowest id."""
    ids = list(members)
    cves = [(int(m[1]), int(m[2]), i) for i in ids if (m := _CVE.fullmatch(i))]
    if cves:
        return min(cves)[2]
    return min(ids)


def _slim(affected: Affected) -> Affected:
    # Matching needs package, ranges and versions; the rest (Go symbol lists...) is memory.
    return msgspec.structs.replace(
        affected, severity=(), ecosystem_specific=None, database_specific=None
    )


class AdvisoryIndex:
    def __init__(self) -> None:
        self._records: dict[str, _Record] = {}
        self._affected: dict[PackageId, dict[str, list[Affected]]] = {}
        self._compiled: dict[PackageId, tuple[tuple[str, CompiledAffected], ...]] = {}
        self._aliases = _AliasGroups()

    # ---- loading ----------------------------------------------------------------------

    def upsert(self, advisory: Advisory) -> UpsertOutcome:
        old = self._records.get(advisory.id)
        if old is not None:
            if advisory.modified < old.modified:
                return "stale"
            if advisory.modified == old.modified:
                return "unchanged"
            self._drop(old)
        if advisory.withdrawn is not None:
            self._records[advisory.id] = _Record(
                advisory.id, advisory.modified, True, advisory.aliases, ()
            )
            if old is not None and not old.withdrawn:
                self._aliases.stale = True  # its aliases no longer join anything
            return "withdrawn"
        packages: list[PackageId] = []
        for affected in advisory.affected:
            if affected.package is None:
                continue  # repository-only entries cannot be matched to a package
            pid = package_id(affected.package.ecosystem, affected.package.name)
            self._affected.setdefault(pid, {}).setdefault(advisory.id, []).append(_slim(affected))
            self._compiled.pop(pid, None)
            if pid not in packages:
                packages.append(pid)
        self._records[advisory.id] = _Record(
            advisory.id, advisory.modified, False, advisory.aliases, tuple(packages)
        )
        if old is not None and not old.withdrawn and not set(old.aliases) <= set(advisory.aliases):
            self._aliases.stale = True  # an alias went away: unions cannot be undone
        else:
            self._aliases.add(advisory.id, advisory.aliases)
        return "inserted" if old is None else "updated"

    def upsert_many(self, advisories: Iterable[Advisory]) -> dict[str, int]:
        """Upsert a batch; returns how many of each outcome.

        The cyclic garbage collector is paused for the batch: loading creates hundreds of
        thousands of small acyclic containers, and its repeated full passes over them cost
        about twice the load itself (measured in tests/bench/match_micro.py).
        """
        counts: dict[str, int] = {}
        with _gc_paused():
            for advisory in advisories:
                outcome = self.upsert(advisory)
                counts[outcome] = counts.get(outcome, 0) + 1
        return counts

    def _drop(self, record: _Record) -> None:
        for pid in record.packages:
            by_advisory = self._affected.get(pid)
            if by_advisory is not None:
                by_advisory.pop(record.id, None)
                if not by_advisory:
                    del self._affected[pid]
            self._compiled.pop(pid, None)

    # ---- reading ----------------------------------------------------------------------

    def __len__(self) -> int:
        return sum(1 for r in self._records.values() if not r.withdrawn)

    def modified_of(self, advisory_id: str) -> datetime | None:
        record = self._records.get(advisory_id)
        return record.modified if record else None

    def counts_by_ecosystem(self) -> dict[str, int]:
        """Active advisories per ecosystem (an advisory spanning two counts in both)."""
        counts: dict[str, int] = {}
        for record in self._records.values():
            for ecosystem in {pid[0] for pid in record.packages}:
                counts[ecosystem] = counts.get(ecosystem, 0) + 1
        return dict(sorted(counts.items()))

    def group_of(self, advisory_id: str) -> str:
        """The alias group id of ``advisory_id`` (itself when it has no aliases)."""
        return self._groups().group_of(advisory_id)

    def group_members(self, advisory_id: str) -> tuple[str, ...]:
        """Every id in ``advisory_id``'s group (advisories and bare aliases such as CVEs)."""
        return self._groups().members(advisory_id)

    def _groups(self) -> _AliasGroups:
        if self._aliases.stale:
            self._aliases.reset(r for r in self._records.values() if not r.withdrawn)
        return self._aliases

    def _compiled_for(self, pid: PackageId) -> tuple[tuple[str, CompiledAffected], ...]:
        compiled = self._compiled.get(pid)
        if compiled is None:
            entries = self._affected.get(pid, {})
            compiled = tuple(
                (advisory_id, compile_affected(affected))
                for advisory_id in sorted(entries)
                for affected in entries[advisory_id]
            )
            self._compiled[pid] = compiled
        return compiled

    # ---- matching ---------------------------------------------------------------------

    def match(self, components: Iterable[Component]) -> list[Match]:
        """Affected and not-evaluated (component, alias group) pairs, in component order.

        Components whose package id cannot be told (no purl, no ecosystem) or whose package
        has no advisory are absent. Within a group, ``advisory_ids`` lists the advisories
        that affect the component; when none does but some could not be evaluated, the
        verdict is "not evaluated" with their reasons.
        """
        with _gc_paused():  # compiling a cold package allocates many small tuples
            return self._match(components)

    def _match(self, components: Iterable[Component]) -> list[Match]:
        groups = self._groups()
        matches: list[Match] = []
        for component in components:
            found = component_package(component)
            if found is None:
                continue
            pid, version = found
            if pid not in self._affected:
                continue
            keys: dict[str, VersionKey | VersionError] = {}
            affected_ids: dict[str, set[str]] = {}
            unknown: dict[str, dict[str, str]] = {}
            for advisory_id, entry in self._compiled_for(pid):
                verdict = entry.verdict(version, keys)
                if verdict.status == "not_affected":
                    continue
                group = groups.group_of(advisory_id)
                if verdict.status == "affected":
                    affected_ids.setdefault(group, set()).add(advisory_id)
                else:
                    unknown.setdefault(group, {})[advisory_id] = verdict.reason or ""
            for group in sorted(affected_ids.keys() | unknown.keys()):
                if group in affected_ids:
                    ids = tuple(sorted(affected_ids[group]))
                    matches.append(Match(component.ref, group, ids, AFFECTED))
                else:
                    reasons = unknown[group]
                    ids = tuple(sorted(reasons))
                    reason = "; ".join(dict.fromkeys(reasons[i] for i in ids))
                    matches.append(Match(component.ref, group, ids, not_evaluated(reason)))
        return matches


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic collector: bulk work here allocates only acyclic containers."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _AliasGroups:
    """Union-find over advisory ids and their aliases, grown incrementally.

    Unions only ever merge, so an upsert that adds aliases is cheap; one that removes an
    alias, or a withdrawal, marks the structure stale and the next read rebuilds it from the
    active records. The canonical id of a group is computed when first asked and cached.
    """

    def __init__(self) -> None:
        self.stale = False
        self._parent: dict[str, str] = {}
        self._members: dict[str, list[str]] = {}
        self._canonical: dict[str, str] = {}

    def reset(self, records: Iterable[_Record]) -> None:
        self.__init__()  # type: ignore[misc]
        for record in records:
            self.add(record.id, record.aliases)

    def _find(self, node: str) -> str:
        parent = self._parent
        root = parent.get(node)
        if root is None:
            parent[node] = node
            self._members[node] = [node]
            return node
        if root == node or parent[root] == root:  # the common cases: a root, or one below
            return root
        while root != parent[root]:
            root = parent[root]
        while node != root:  # path compression
            parent[node], node = root, parent[node]
        return root

    def add(self, advisory_id: str, aliases: Iterable[str]) -> None:
        root = self._find(advisory_id)
        for alias in aliases:
            other = self._find(alias)
            if other == root:
                continue
            if len(self._members[root]) < len(self._members[other]):
                root, other = other, root
            self._parent[other] = root
            self._members[root].extend(self._members.pop(other))
            self._canonical.pop(root, None)
            self._canonical.pop(other, None)

    def group_of(self, node: str) -> str:
        if node not in self._parent:
            return node
        root = self._find(node)
        canonical = self._canonical.get(root)
        if canonical is None:
            canonical = self._canonical[root] = canonical_group_id(self._members[root])
        return canonical

    def members(self, node: str) -> tuple[str, ...]:
        if node not in self._parent:
            return (node,)
        return tuple(sorted(self._members[self._find(node)]))
