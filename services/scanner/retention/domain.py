"""Retention's rules, pure: which artifacts of a repository a policy deletes, and why.

* **Scope.** A policy looks at the live artifacts of its repository whose path matches its
  ``pattern`` (every artifact without one). The pattern is a glob on the path: ``*`` and
  ``?`` stay inside one ``/``-separated segment, ``**`` crosses segments (``**/`` also
  matches nothing: ``**/*.whl`` matches ``a.whl`` and ``x/y/a.whl``).
* **Quarantined artifacts are not retention's business**: neither counted nor deleted (a
  held upload may still be rejected; it must not push a released one out of ``keep_last``).
* **What is kept.** Artifacts are grouped by package (the normalized name; a file without a
  name by its folder) and ordered newest first (upload time, then stream order). An artifact
  is kept when it is among the newest ``keep_last`` of its group, *or* younger than
  ``max_age_days`` — whichever rules the policy sets; a policy setting neither keeps
  everything (it is refused at creation anyway).
* **Guards.** Of what the rules would delete, nothing promoted (the source of a promotion,
  or a promotion's copy) and nothing downloaded in the last ``keep_pulled_days`` is
  deleted: those are *protected*, with the guard that kept them.

Applying a plan and planning again with the same ``now`` deletes nothing more: the kept
newest stay the newest, and what was old stays old.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Iterable, Sequence
from typing import Literal

import msgspec

from contracts.events.registry import RetentionPolicy

Guard = Literal["promoted", "pulled_recently"]
_DAY = dt.timedelta(days=1)


class Candidate(msgspec.Struct, frozen=True, kw_only=True):
    """What retention knows of a live artifact."""

    id: str
    path: str
    # The normalized package name (None: a generic file without one).
    name: str | None = None
    display_name: str | None = None
    version: str | None = None
    digest: str = ""
    size: int = 0
    uploaded_at: dt.datetime
    uploaded_seq: int
    quarantined: bool = False
    # The source of a promotion, or a promotion's copy.
    promoted: bool = False
    last_pulled_at: dt.datetime | None = None

    @property
    def group(self) -> str:
        """The package this artifact is a version of: its name, else its folder."""
        if self.name is not None:
            return self.name
        folder = self.path.rpartition("/")[0]
        return f"{folder}/" if folder else "/"


class Deletion(msgspec.Struct, frozen=True, kw_only=True):
    artifact: Candidate
    why: str


class Protection(msgspec.Struct, frozen=True, kw_only=True):
    artifact: Candidate
    guard: Guard
    why: str


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    """What a policy does to a repository at ``now``: ``deletions`` (newest first within
    each package, packages in name order), ``protected`` (what the guards keep) and how
    many matching artifacts are simply kept."""

    deletions: list[Deletion]
    protected: list[Protection]
    kept: int
    matched: int

    @property
    def bytes_freed(self) -> int:
        return sum(d.artifact.size for d in self.deletions)


# ---- the pattern ------------------------------------------------------------------------------
class InvalidPattern(ValueError):
    pass


@functools.lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """The glob ``pattern`` as a regular expression over a whole path."""
    if any(ord(c) < 32 or ord(c) == 127 for c in pattern):
        raise InvalidPattern("no control characters")
    if pattern.startswith("/"):
        raise InvalidPattern("paths inside a repository are relative: drop the leading '/'")
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            parts.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            parts.append(".*")
            i += 2
        elif pattern[i] == "*":
            parts.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            parts.append("[^/]")
            i += 1
        else:
            parts.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(parts), re.S)


def path_matches(pattern: str | None, path: str) -> bool:
    return pattern is None or compile_pattern(pattern).fullmatch(path) is not None


# ---- the policy -------------------------------------------------------------------------------
class PolicyProblem(msgspec.Struct, frozen=True):
    field: str
    message: str


def check_policy(policy: RetentionPolicy) -> list[PolicyProblem]:
    """What is wrong with a policy's definition (empty: nothing)."""
    problems: list[PolicyProblem] = []
    if policy.keep_last is None and policy.max_age_days is None:
        message = "set keep_last and/or max_age_days: a policy keeps by count, by age or both"
        problems += [
            PolicyProblem("$.keep_last", message),
            PolicyProblem("$.max_age_days", message),
        ]
    if policy.pattern is not None:
        try:
            compile_pattern(policy.pattern)
        except InvalidPattern as exc:
            problems.append(PolicyProblem("$.pattern", str(exc)))
    return problems


def same_name(a: str, b: str) -> bool:
    """Policy names compare case-insensitively within a repository."""
    return a.casefold() == b.casefold()


# ---- the plan ---------------------------------------------------------------------------------
def _newest_first(artifact: Candidate) -> tuple[dt.datetime, int]:
    return artifact.uploaded_at, artifact.uploaded_seq


def guard_of(
    policy: RetentionPolicy, artifact: Candidate, *, now: dt.datetime
) -> tuple[Guard, str] | None:
    """The guard that keeps ``artifact`` from deletion, with its reason, or None."""
    if artifact.promoted:
        return "promoted", "promoted artifacts are never deleted"
    days = policy.keep_pulled_days
    pulled = artifact.last_pulled_at
    if days > 0 and pulled is not None and now - pulled < days * _DAY:
        return "pulled_recently", (
            f"downloaded {pulled.isoformat()}, within the last {days} day(s)"
        )
    return None


def _why(policy: RetentionPolicy, artifact: Candidate, rank: int, *, now: dt.datetime) -> str:
    reasons = []
    if policy.keep_last is not None:
        reasons.append(f"not among the newest {policy.keep_last} of {artifact.group} (#{rank + 1})")
    if policy.max_age_days is not None:
        age_days = (now - artifact.uploaded_at) // _DAY
        reasons.append(f"{age_days} day(s) old, past max_age_days {policy.max_age_days}")
    return " and ".join(reasons)


def plan(policy: RetentionPolicy, artifacts: Iterable[Candidate], *, now: dt.datetime) -> Plan:
    """What ``policy`` deletes of ``artifacts`` (a repository's live artifacts) at ``now``."""
    groups: dict[str, list[Candidate]] = {}
    for artifact in artifacts:
        if artifact.quarantined or not path_matches(policy.pattern, artifact.path):
            continue
        groups.setdefault(artifact.group, []).append(artifact)
    deletions: list[Deletion] = []
    protected: list[Protection] = []
    kept = matched = 0
    for group in sorted(groups):
        members = sorted(groups[group], key=_newest_first, reverse=True)
        matched += len(members)
        for rank, artifact in enumerate(members):
            if _kept_by_rules(policy, rank, artifact, now=now):
                kept += 1
                continue
            guard = guard_of(policy, artifact, now=now)
            if guard is not None:
                protected.append(Protection(artifact=artifact, guard=guard[0], why=guard[1]))
            else:
                deletions.append(
                    Deletion(artifact=artifact, why=_why(policy, artifact, rank, now=now))
                )
    return Plan(deletions=deletions, protected=protected, kept=kept, matched=matched)


def _kept_by_rules(
    policy: RetentionPolicy, rank: int, artifact: Candidate, *, now: dt.datetime
) -> bool:
    if policy.keep_last is None and policy.max_age_days is None:
        return True  # no rule: nothing goes (fail closed)
    if policy.keep_last is not None and rank < policy.keep_last:
        return True
    return policy.max_age_days is not None and now - artifact.uploaded_at < (
        policy.max_age_days * _DAY
    )


def still_deletable(
    policy: RetentionPolicy, artifact: Candidate | None, *, now: dt.datetime
) -> bool:
    """At its turn in a run: is a planned artifact still there, unquarantined and unguarded?
    (A download or a promotion since the plan was made protects it.)"""
    return (
        artifact is not None
        and not artifact.quarantined
        and guard_of(policy, artifact, now=now) is None
    )


def without(artifacts: Sequence[Candidate], gone: Iterable[str]) -> list[Candidate]:
    """``artifacts`` without the ids in ``gone`` (what a plan leaves behind)."""
    removed = set(gone)
    return [a for a in artifacts if a.id not in removed]
