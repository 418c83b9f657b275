"""The OSV schema (1.x) as msgspec Structs, decoding, and validation of affected ranges.

Decoding is tolerant of fields this module does not know (later schema versions, database
extensions) and strict about the shapes it relies on; a wrong shape is an ``OsvDecodeError``
naming the JSON path. ``range_problems`` then finds ranges that decode but cannot mean
anything (an event with two kinds, ``fixed`` and ``last_affected`` together, no
``introduced``, a GIT range without ``repo``, a version the ecosystem cannot parse), each
with its JSON path, so an import can refuse or record exactly what is broken.

The Structs are ``gc=False``: JSON-shaped data never forms reference cycles, and an index of
100k advisories otherwise spends most of its load time in the cyclic garbage collector.

Spec: https://ossf.github.io/osv-schema/ (evaluation algorithm: ``osv_match``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Literal

import msgspec

from shared.storable import find_unstorable, storable_text

from .errors import ScannerError
from .limits import MAX_IDENTIFIER_BYTES
from .versions import PARSERS, SEMVER_NATIVE, VersionError, base_ecosystem, semver_key

RangeType = Literal["SEMVER", "ECOSYSTEM", "GIT"]
EVALUABLE_RANGE_TYPES = frozenset({"SEMVER", "ECOSYSTEM"})
INTRODUCED_ZERO = "0"


class OsvError(ScannerError):
    """Root of the OSV errors; ``location`` is a JSON path into the advisory."""

    code, status, title = "osv_invalid", 422, "Invalid OSV advisory"

    def __init__(self, detail: str, *, location: str | None = None, code: str | None = None):
        super().__init__(detail, code=code, extra={"location": location} if location else None)
        self.location = location

    def __str__(self) -> str:
        return f"{self.detail} (at {self.location})" if self.location else self.detail


class OsvDecodeError(OsvError):
    code, status, title = "osv_malformed", 422, "Malformed OSV advisory"


class BrokenRanges(OsvError):
    """Ranges that decode but cannot be evaluated; ``problems`` lists every one."""

    code, status, title = "osv_broken_ranges", 422, "OSV advisory with broken ranges"

    def __init__(self, advisory_id: str, problems: tuple[RangeProblem, ...]) -> None:
        first = problems[0]
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{advisory_id}: {first.message}{more}", location=first.path)
        self.advisory_id = advisory_id
        self.problems = problems
        self.extra["problems"] = [{"path": p.path, "message": p.message} for p in problems]


class Severity(msgspec.Struct, frozen=True, gc=False):
    type: str
    score: str


class Package(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    ecosystem: str
    name: str
    purl: str | None = None


class Event(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    introduced: str | None = None
    fixed: str | None = None
    last_affected: str | None = None
    limit: str | None = None

    def kinds(self) -> list[tuple[str, str]]:
        """The (kind, version) pairs present; a valid event has exactly one."""
        pairs = [
            ("introduced", self.introduced),
            ("fixed", self.fixed),
            ("last_affected", self.last_affected),
            ("limit", self.limit),
        ]
        return [(kind, value) for kind, value in pairs if value is not None]


class Range(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    type: str
    events: tuple[Event, ...] = ()
    repo: str | None = None
    database_specific: dict[str, Any] | None = None


class Affected(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    package: Package | None = None
    severity: tuple[Severity, ...] = ()
    ranges: tuple[Range, ...] = ()
    versions: tuple[str, ...] = ()
    ecosystem_specific: dict[str, Any] | None = None
    database_specific: dict[str, Any] | None = None


class Reference(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    type: str
    url: str


class Advisory(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    id: str
    modified: datetime
    schema_version: str | None = None
    published: datetime | None = None
    withdrawn: datetime | None = None
    aliases: tuple[str, ...] = ()
    related: tuple[str, ...] = ()
    upstream: tuple[str, ...] = ()
    summary: str | None = None
    details: str | None = None
    severity: tuple[Severity, ...] = ()
    affected: tuple[Affected, ...] = ()
    references: tuple[Reference, ...] = ()
    database_specific: dict[str, Any] | None = None


_DECODER = msgspec.json.Decoder(Advisory)
_PATH = re.compile(r" - at `(\$[^`]*)`$")


def decode_advisory(data: bytes | str) -> Advisory:
    """One OSV JSON document -> ``Advisory``; ``OsvDecodeError`` with the JSON path if not
    (JSON nested beyond the decoder's recursion limit included). An import checks more:
    ``check_storable``."""
    try:
        advisory = _DECODER.decode(data)
    except msgspec.ValidationError as exc:
        message = storable_text(str(exc))
        match = _PATH.search(message)
        location = match.group(1) if match else "$"
        raise OsvDecodeError(_PATH.sub("", message), location=location) from None
    except msgspec.DecodeError as exc:
        raise OsvDecodeError(f"not JSON: {storable_text(str(exc))}", location="$") from None
    except RecursionError:
        raise OsvDecodeError(
            "nested more than the JSON decoder's limit (about 1,000 levels) deep", location="$"
        ) from None
    if not advisory.id.strip():
        raise OsvDecodeError("empty id", location="$.id")
    return advisory


def check_storable(advisory: Advisory) -> Advisory:
    """``advisory``, or ``OsvDecodeError`` naming the JSON path of what the database could
    not hold, so that an import never acknowledges an advisory it then loses: a value
    PostgreSQL refuses anywhere (a NUL, a time outside years 1-9999 in UTC such as
    ``0001-01-01T00:00:00+14:00``; ``shared.storable``), nesting beyond
    ``MAX_ADVISORY_DEPTH``, an id, alias or package name longer than
    ``MAX_IDENTIFIER_BYTES`` (they are indexed). Not made when the matcher loads the
    database: what is held passed it."""
    problem = find_unstorable(advisory, max_depth=MAX_ADVISORY_DEPTH)
    if problem is not None:
        raise OsvDecodeError(f"{problem.path} {problem.reason}", location=problem.path)
    for path, value in _identifiers(advisory):
        if len(value) * 4 > MAX_IDENTIFIER_BYTES and len(value.encode()) > MAX_IDENTIFIER_BYTES:
            raise OsvDecodeError(
                f"{path} is longer than {MAX_IDENTIFIER_BYTES} bytes", location=path
            )
    return advisory


# Nesting of an advisory's values (database_specific is free-form); OSV's own shapes are
# about 6 levels deep.
MAX_ADVISORY_DEPTH = 64


def _identifiers(advisory: Advisory) -> Iterator[tuple[str, str]]:
    """The values the database indexes, with their JSON paths."""
    yield "$.id", advisory.id
    for name in ("aliases", "related", "upstream"):
        for i, value in enumerate(getattr(advisory, name)):
            yield f"$.{name}[{i}]", value
    for i, affected in enumerate(advisory.affected):
        if affected.package is not None:
            yield f"$.affected[{i}].package.ecosystem", affected.package.ecosystem
            yield f"$.affected[{i}].package.name", affected.package.name


class RangeProblem(msgspec.Struct, frozen=True, gc=False):
    path: str
    message: str


def _parse_problem(parser_name: str, version: str) -> str | None:
    parser = semver_key if parser_name == "SEMVER" else PARSERS.get(parser_name)
    if parser is None:
        return None
    try:
        parser(version)
    except VersionError as exc:
        return str(exc)
    return None


def range_parser_name(ecosystem: str, range_type: str) -> str | None:
    """Which ordering a range uses: an ecosystem name, ``SEMVER``, or None (unsupported)."""
    base = base_ecosystem(ecosystem)
    if range_type == "ECOSYSTEM":
        return base if base in PARSERS else None
    if range_type == "SEMVER":
        return base if base in SEMVER_NATIVE else "SEMVER"
    return None


def range_problems(advisory: Advisory) -> tuple[RangeProblem, ...]:
    """Every structural or version problem in ``advisory.affected``, with JSON paths.

    Versions are only checked for ecosystems with an ordering here; others are not wrong,
    just not evaluable (matching says so).
    """
    problems: list[RangeProblem] = []
    for a_index, affected in enumerate(advisory.affected):
        at = f"$.affected[{a_index}]"
        ecosystem = affected.package.ecosystem if affected.package else ""
        if affected.package is None and not affected.ranges:
            problems.append(RangeProblem(at, "neither a package nor ranges"))
        for r_index, rng in enumerate(affected.ranges):
            problems.extend(_problems_of_range(rng, ecosystem, f"{at}.ranges[{r_index}]"))
    return tuple(problems)


def _problems_of_range(rng: Range, ecosystem: str, at: str) -> list[RangeProblem]:
    problems: list[RangeProblem] = []
    if rng.type not in ("SEMVER", "ECOSYSTEM", "GIT"):
        problems.append(RangeProblem(f"{at}.type", f"unknown range type {rng.type!r}"))
    if rng.type == "GIT" and not rng.repo:
        problems.append(RangeProblem(f"{at}.repo", "a GIT range needs a repo"))
    if not rng.events:
        problems.append(RangeProblem(f"{at}.events", "no events"))
        return problems
    parser_name = range_parser_name(ecosystem, rng.type) if ecosystem else None
    seen: set[str] = set()
    for e_index, event in enumerate(rng.events):
        kinds = event.kinds()
        e_at = f"{at}.events[{e_index}]"
        if len(kinds) != 1:
            what = "no kind" if not kinds else "kinds " + ", ".join(k for k, _ in kinds)
            problems.append(RangeProblem(e_at, f"an event has exactly one kind, this has {what}"))
            continue
        kind, version = kinds[0]
        seen.add(kind)
        if parser_name is None or (kind == "introduced" and version == INTRODUCED_ZERO):
            continue
        if kind == "limit" and "*" in version:
            continue
        problem = _parse_problem(parser_name, version)
        if problem is not None:
            problems.append(RangeProblem(f"{e_at}.{kind}", problem))
    if "introduced" not in seen:
        problems.append(RangeProblem(f"{at}.events", "no introduced event"))
    if "fixed" in seen and "last_affected" in seen:
        problems.append(RangeProblem(f"{at}.events", "both fixed and last_affected events"))
    return problems


def check_advisory(advisory: Advisory) -> Advisory:
    """``advisory`` itself, or ``OsvDecodeError`` for a value the database cannot hold
    (``check_storable``), or ``BrokenRanges`` listing every problem of its ranges."""
    check_storable(advisory)
    problems = range_problems(advisory)
    if problems:
        raise BrokenRanges(advisory.id, problems)
    return advisory
