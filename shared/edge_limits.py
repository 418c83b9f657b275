"""Can every consumer store this input? The limits checked wherever input enters.

A request that passes its schema can still hold a value that a consumer's database or
decoder refuses *after* the event recording it was published: a NUL in text (PostgreSQL
``text`` cannot hold one), an integer beyond ``bigint``, a datetime whose UTC value leaves
Python's (and so asyncpg's) range, or JSON nested so deeply that decoding it recurses out of
the stack. The edge (``shared.http``) and every RPC endpoint (``shared.rpc``) refuse such
input up front, as a 422 naming the field, so nothing is published.

Two checks, both iterative (the input is hostile, so neither may recurse on it):

* :func:`too_deep` scans the raw JSON bytes before anything decodes them;
* :func:`unstorable` walks the decoded value (Structs, lists, dicts, scalars).
"""

from __future__ import annotations

import array
import datetime as dt
import functools
import itertools
import math
import re
from typing import Any

import msgspec

from shared.errors import ValidationFailed

# Nesting of a JSON body or RPC request: far beyond any schema of ours, far below the depth
# at which a decoder recurses out of the stack.
MAX_JSON_DEPTH = 64
# PostgreSQL bigint, and what every consumer decodes an integer into.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

NUL_MESSAGE = "NUL characters (\\u0000) are not accepted"
_INT_MESSAGE = f"integers must be between {INT64_MIN} and {INT64_MAX}"
_DATETIME_MESSAGE = (
    "the date and time, converted to UTC, is outside the years 1 to 9999 (check its offset)"
)
_FLOAT_MESSAGE = "numbers must be finite"

# A JSON string (with any escapes) optionally followed by a colon (an object key), or one of
# the structural characters that change depth or position.
_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"\s*:?|[\[\]{},]')
_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
# "[" and "{" as 1, "]" and "}" as -1 (0xFF read as a signed byte).
_BRACKET_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_QUOTE, _COLON = ord('"'), ord(":")
_OPENERS = frozenset(b"[{")
_CLOSERS = frozenset(b"]}")


def too_deep(raw: bytes, *, limit: int = MAX_JSON_DEPTH) -> str | None:
    """The JSON path of the first array or object nested deeper than ``limit``, if any.

    A scan of the bytes, not a decode, so it never recurses: a linear count at C speed for
    the usual answer (not too deep, ~40 ms for 1 MiB of small containers), then, only for a
    body to refuse, a walk of its tokens up to the first container beyond the limit to name
    it. Malformed JSON is left to the decoder to report.
    """
    if raw.count(b"[") + raw.count(b"{") <= limit:  # brackets in strings only over-count
        return None
    if _nests_at_most(raw, limit):
        return None
    # Too deep (or unbalanced): walk the tokens to name where. One entry per open container:
    # [is_object, current key (raw bytes) or array index].
    open_: list[list[Any]] = []
    for match in _TOKENS.finditer(raw):
        token = match.group()
        first = token[0]
        if first == _QUOTE:
            if token[-1] == _COLON and open_ and open_[-1][0]:
                open_[-1][1] = token[: token.rindex(b'"') + 1]
        elif first in _OPENERS:
            if len(open_) >= limit:
                return _path_of(open_)
            open_.append([first == ord("{"), None if first == ord("{") else 0])
        elif first in _CLOSERS:
            if open_:
                open_.pop()
        elif open_ and not open_[-1][0]:  # a comma between array items
            open_[-1][1] += 1
    return None


def _nests_at_most(raw: bytes, limit: int) -> bool:
    """Whether the brackets of ``raw`` (strings aside) stay within ``limit`` levels: the
    strings cut out and each bracket made a +1 or -1 byte by C code, the running sum's
    maximum is the depth (no Python loop per byte)."""
    skeleton = _STRINGS.sub(b"", raw).translate(_BRACKET_STEPS, _NOT_BRACKETS)
    return max(itertools.accumulate(array.array("b", skeleton)), default=0) <= limit


def _path_of(open_: list[list[Any]]) -> str:
    parts = ["$"]
    for is_object, where in open_:
        if not is_object:
            parts.append(f"[{where}]")
        elif where is not None:
            try:
                key = msgspec.json.decode(where)
            except msgspec.DecodeError:
                key = where.decode("utf-8", "replace").strip('"')
            parts.append(f".{key}")
    return "".join(parts)


def unstorable(value: Any) -> tuple[str, str] | None:
    """``(JSON path, message)`` of the first value a consumer could not store, if any.

    Walks Structs (by their encoded field names), dicts (keys too), lists, tuples and sets
    without recursion; checks text for NUL, integers against bigint, floats for finiteness
    and aware datetimes for a UTC value within Python's range (``year 1 +14:00`` is before
    year 1 in UTC, ``9999-12-31T23:59:59-14:00`` after year 9999).
    """
    # (value, parent entry, key or index): the path is only built for the one that fails.
    pending: list[tuple[Any, Any, Any]] = [(value, None, None)]
    while pending:
        entry = pending.pop()
        item = entry[0]
        problem = _scalar_problem(item)
        if problem is not None:
            return _entry_path(entry), problem
        if isinstance(item, msgspec.Struct):
            for attr, name in _field_names(type(item)):
                child = getattr(item, attr)
                if child is not msgspec.UNSET:
                    pending.append((child, entry, name))
        elif isinstance(item, dict):
            for key, child in item.items():
                key_problem = _scalar_problem(key)
                if key_problem is not None:
                    return _entry_path(entry), key_problem
                pending.append((child, entry, key))
        elif isinstance(item, list | tuple):
            pending.extend((child, entry, index) for index, child in enumerate(item))
        elif isinstance(item, set | frozenset):
            pending.extend((child, entry, 0) for child in item)
    return None


def _scalar_problem(item: Any) -> str | None:
    if isinstance(item, str):
        return NUL_MESSAGE if "\x00" in item else None
    if isinstance(item, bool):
        return None
    if isinstance(item, int):
        return None if INT64_MIN <= item <= INT64_MAX else _INT_MESSAGE
    if isinstance(item, float):
        return None if math.isfinite(item) else _FLOAT_MESSAGE
    if isinstance(item, dt.datetime):
        return None if _utc_representable(item) else _DATETIME_MESSAGE
    return None


def _utc_representable(moment: dt.datetime) -> bool:
    if moment.tzinfo is None or moment.utcoffset() is None:
        return True
    try:
        moment.astimezone(dt.UTC)
    except OverflowError:
        return False
    return True


@functools.cache
def _field_names(struct_type: type[msgspec.Struct]) -> tuple[tuple[str, str], ...]:
    # Once per type: msgspec.structs.fields evaluates the annotations on every call.
    return tuple((f.name, f.encode_name) for f in msgspec.structs.fields(struct_type))


def _entry_path(entry: tuple[Any, Any, Any]) -> str:
    keys: list[Any] = []
    while entry[1] is not None:
        keys.append(entry[2])
        entry = entry[1]
    parts = ["$"]
    for key in reversed(keys):
        parts.append(f"[{key}]" if isinstance(key, int) else f".{key}")
    return "".join(parts).replace("\x00", "\\u0000")


def refuse_too_deep(raw: bytes, *, where: str | None = None) -> None:
    """422 ``too_deep`` naming the first container nested beyond :data:`MAX_JSON_DEPTH`."""
    path = too_deep(raw)
    if path is None:
        return
    message = f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
    error = {"field": path, "message": message, **({"in": where} if where else {})}
    raise ValidationFailed(f"{message} (at {path})", code="too_deep", extra={"errors": [error]})


def refuse_unstorable(value: Any, *, where: str | None = None) -> None:
    """422 ``validation_failed`` naming the first value no consumer could store; ``where``
    ("query", "path") tells a client which part of the request it was in."""
    found = unstorable(value)
    if found is None:
        return
    field, message = found
    error = {"field": field, "message": message, **({"in": where} if where else {})}
    label = f"{where} " if where else ""
    raise ValidationFailed(f"{label}{field}: {message}", extra={"errors": [error]})
