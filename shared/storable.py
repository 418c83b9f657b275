"""Is this value storable by every consumer? Checks for what PostgreSQL (``text``, ``jsonb``,
``bigint``, ``timestamptz``) and Python's ``datetime`` refuse, for a value about to be
published as an event, written as a row, or stored as a blob that a projection reads.

A value that passes here can be applied by any projection; one that fails must be refused
at the edge (422 naming the field), never acknowledged and then lost in a consumer that
retries it forever. What is refused:

* a NUL character (U+0000) in any string or mapping key: PostgreSQL ``text`` and ``jsonb``
  cannot hold one;
* a lone surrogate (``"\\ud800"`` decoded from JSON): not encodable as UTF-8;
* an integer outside PostgreSQL's ``bigint`` (a JSON number has no such bound);
* a float that is not finite (``jsonb`` has no NaN or Infinity; JSON encoders write null);
* an aware datetime whose UTC instant is outside Python's years 1-9999
  (``0001-01-01T00:00:00+14:00`` is in year 0 in UTC: ``astimezone`` overflows);
* nesting deeper than ``max_depth`` (the walk is iterative, so it cannot itself recurse).

``find_unstorable`` answers the first problem with its path (``$.components[3].name``)
(``shared.edge_limits.refuse_unstorable`` turns it into the 422 a request gets);
``storable_text`` makes a diagnostic string (a message, a location that quotes
the input) safe to store by escaping what cannot be stored and bounding its length.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Mapping
from typing import Any

import msgspec

BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1
DEFAULT_MAX_DEPTH = 64


class Unstorable(msgspec.Struct, frozen=True):
    """Where a value cannot be stored (``path``, JSON-path style) and why (``reason``)."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path} {self.reason}"


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored as PostgreSQL text, or None."""
    if "\x00" in text:
        return "contains a NUL character (U+0000)"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "contains a lone surrogate (not valid Unicode)"
    return None


def int_problem(value: int) -> str | None:
    if BIGINT_MIN <= value <= BIGINT_MAX:
        return None
    return "is an integer outside the 64-bit range"


def float_problem(value: float) -> str | None:
    return None if math.isfinite(value) else "is not a finite number"


def datetime_problem(value: dt.datetime) -> str | None:
    """Aware datetimes are stored as UTC instants: the conversion must stay in years 1-9999."""
    if value.tzinfo is None:
        return None
    try:
        value.astimezone(dt.UTC)
    except (OverflowError, ValueError):
        return "is a time outside years 1-9999 in UTC"
    return None


def scalar_problem(value: object) -> str | None:
    """Why one scalar cannot be stored, or None (also None for containers and other types)."""
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return int_problem(value)
    if isinstance(value, float):
        return float_problem(value)
    if isinstance(value, dt.datetime):
        return datetime_problem(value)
    return None


def _key_path(path: str, key: object) -> str:
    if isinstance(key, str) and key.isidentifier():
        return f"{path}.{key}"
    return f"{path}[{storable_text(repr(key), max_chars=80)}]"


@functools.cache
def _wire_names(struct_type: type[msgspec.Struct]) -> tuple[tuple[str, str], ...]:
    # Once per type: msgspec.structs.fields evaluates the annotations on every call.
    return tuple((f.name, f.encode_name) for f in msgspec.structs.fields(struct_type))


def find_unstorable(
    value: Any, *, path: str = "$", max_depth: int = DEFAULT_MAX_DEPTH
) -> Unstorable | None:
    """The first part of ``value`` (in document order) that a consumer could not store."""
    stack: list[tuple[str, Any, int]] = [(path, value, 0)]
    while stack:
        here, item, depth = stack.pop()
        if isinstance(item, str | int | float | dt.datetime):
            reason = scalar_problem(item)
            if reason is not None:
                return Unstorable(here, reason)
            continue
        if item is None or isinstance(item, bytes | bytearray | dt.date | dt.time):
            continue
        if depth >= max_depth:
            return Unstorable(here, f"is nested deeper than {max_depth} levels")
        children: list[tuple[str, Any, int]] = []
        if isinstance(item, msgspec.Struct):
            # Named as on the wire (a field renamed ``from`` is not ``$.from_``); unset ones
            # are not sent on.
            for attr, name in _wire_names(type(item)):
                child = getattr(item, attr)
                if child is not msgspec.UNSET:
                    children.append((_key_path(here, name), child, depth + 1))
        elif isinstance(item, Mapping):
            for key, child in item.items():
                key_path = _key_path(here, key)
                if isinstance(key, str) and (reason := text_problem(key)) is not None:
                    return Unstorable(key_path, f"has a key that {reason}")
                children.append((key_path, child, depth + 1))
        elif isinstance(item, list | tuple | set | frozenset):
            children = [(f"{here}[{i}]", child, depth + 1) for i, child in enumerate(item)]
        stack.extend(reversed(children))
    return None


def storable_text(text: str, *, max_chars: int | None = None) -> str:
    """``text`` made storable for a diagnostic: NUL written ``\\x00``, lone surrogates
    escaped, and cut to ``max_chars`` (with an ellipsis) when given."""
    if text_problem(text) is not None:
        text = text.replace("\x00", "\\x00")
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if max_chars is not None and len(text) > max_chars:
        text = text[: max_chars - 1] + "…"
    return text
