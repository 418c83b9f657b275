"""Can every consumer store this input? The limits checked wherever input enters.

A request that passes its schema can still hold a value that a consumer's database or
decoder refuses *after* the event recording it was published: a NUL in text (PostgreSQL
``text`` cannot hold one), an integer beyond ``bigint``, a datetime whose UTC value leaves
Python's (and so asyncpg's) range, or JSON nested so deeply that decoding it recurses out of
the stack. The edge (``shared.http``) and every RPC endpoint (``shared.rpc``) refuse such
input up front, as a 422 naming the field, so nothing is published.

Two checks, both iterative (the input is hostile, so neither may recurse on it):

* :func:`too_deep` scans the raw JSON bytes before anything decodes them;
* :func:`unstorable` walks the decoded value (Structs by their wire names, lists, dicts,
  scalars) with the kit's one walk, ``shared.storable.find_unstorable``.
"""

from __future__ import annotations

import array
import itertools
import re
from typing import Any

import msgspec

from shared.errors import ValidationFailed
from shared.storable import DEFAULT_MAX_DEPTH, find_unstorable

# Nesting of a JSON body or RPC request: far beyond any schema of ours, far below the depth
# at which a decoder recurses out of the stack (shared.storable's default too).
MAX_JSON_DEPTH = DEFAULT_MAX_DEPTH
# An RPC request wraps a body the gateway accepted at MAX_JSON_DEPTH in a level or two of its
# own (``{"project_id": …, "body": {…}}``): room for that, still far from recursion.
RPC_MAX_DEPTH = MAX_JSON_DEPTH + 8

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


def unstorable(value: Any, *, max_depth: int = MAX_JSON_DEPTH) -> tuple[str, str] | None:
    """``(JSON path, reason)`` of the first value a consumer could not store, if any: the
    kit's one definition (``shared.storable``) of NUL, lone surrogates, integers beyond
    bigint, non-finite floats and datetimes whose UTC value leaves years 1..9999."""
    found = find_unstorable(value, max_depth=max_depth)
    return None if found is None else (found.path, found.reason)


def refuse_too_deep(raw: bytes, *, where: str | None = None, limit: int = MAX_JSON_DEPTH) -> None:
    """422 ``too_deep`` naming the first container nested beyond ``limit``."""
    path = too_deep(raw, limit=limit)
    if path is None:
        return
    message = f"JSON nested deeper than {limit} levels"
    error = {"field": path, "message": message, **({"in": where} if where else {})}
    raise ValidationFailed(f"{message} (at {path})", code="too_deep", extra={"errors": [error]})


def refuse_unstorable(
    value: Any, *, where: str | None = None, max_depth: int = MAX_JSON_DEPTH
) -> None:
    """422 ``validation_failed`` (the gateway's code for a value its schema refuses) naming
    the first value no consumer could store; ``where`` ("query", "path") tells a client
    which part of the request it was in."""
    found = unstorable(value, max_depth=max_depth)
    if found is None:
        return
    field, message = found
    error = {"field": field, "message": message, **({"in": where} if where else {})}
    label = f"{where} " if where else ""
    raise ValidationFailed(f"{label}{field}: {message}", extra={"errors": [error]})
