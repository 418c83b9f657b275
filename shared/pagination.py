"""Cursor pagination for lists: ``?cursor=&limit=`` in, ``{items, next_cursor}`` out.

The cursor is opaque to clients: the base64url of the JSON list of the last row's sort key,
so the next page starts strictly after it (keyset pagination: stable under inserts, no
OFFSET scans). A cursor that does not decode is a 422 ``invalid_cursor``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Annotated, TypeVar

import msgspec

from shared.errors import ValidationFailed

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
# Cursors carry a version so the key layout can change without misreading old cursors.
_CURSOR_VERSION = 1

Limit = Annotated[
    int,
    msgspec.Meta(ge=1, le=MAX_LIMIT, description=f"Page size, 1..{MAX_LIMIT}"),
]
CursorKey = tuple[str | int, ...]

Row = TypeVar("Row")


class PageQuery(msgspec.Struct, frozen=True, kw_only=True):
    """The paging part of a list query; list queries subclass it to add their filters."""

    cursor: Annotated[str, msgspec.Meta(description="next_cursor of the previous page")] | None = (
        None
    )
    limit: Limit = DEFAULT_LIMIT


class InvalidCursor(ValidationFailed):
    code, title = "invalid_cursor", "The pagination cursor is not valid"


class _Cursor(msgspec.Struct, array_like=True, frozen=True):
    version: int
    key: list[str | int]


def encode_cursor(key: Sequence[str | int]) -> str:
    raw = msgspec.json.encode(_Cursor(_CURSOR_VERSION, list(key)))
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


_BIGINT = range(-(2**63), 2**63)


def decode_cursor(
    cursor: str, *, length: int | None = None, kinds: Sequence[type] | None = None
) -> CursorKey:
    """The sort key inside ``cursor``: ``length`` key parts, or one of each of ``kinds``
    (``str`` / ``int``), so that a hand-made cursor never reaches the database as a value
    of the wrong type (every int must fit a bigint)."""
    if kinds is not None:
        length = len(kinds)
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = msgspec.json.decode(raw, type=_Cursor)
    except (binascii.Error, ValueError, msgspec.DecodeError) as exc:
        raise InvalidCursor("the cursor was not issued by this API", extra=_where()) from exc
    if decoded.version != _CURSOR_VERSION or len(decoded.key) != length:
        raise InvalidCursor("the cursor belongs to another list or version", extra=_where())
    key = tuple(decoded.key)
    if any(isinstance(value, int) and value not in _BIGINT for value in key) or (
        kinds is not None
        and any(type(value) is not kind for value, kind in zip(key, kinds, strict=True))
    ):
        raise InvalidCursor("the cursor belongs to another list", extra=_where())
    return key


def _where() -> dict[str, object]:
    return {"errors": [{"field": "$.cursor", "message": "invalid cursor"}]}


def split_page(
    rows: Sequence[Row], *, limit: int, key: Callable[[Row], Sequence[str | int]]
) -> tuple[list[Row], str | None]:
    """Given up to ``limit + 1`` rows in sort order, the page and the cursor of the next one.

    Fetching one row more than the page tells whether a next page exists without a count.
    """
    page = list(rows[:limit])
    if len(rows) <= limit or not page:
        return page, None
    return page, encode_cursor(key(page[-1]))


def seq_cursor(cursor: str | None) -> int | None:
    """The sequence number in the cursor of a list ordered by one (see :func:`seq_page`);
    None: the first page."""
    return int(decode_cursor(cursor, kinds=(int,))[0]) if cursor else None


def seq_page(rows: Sequence[tuple[Row, int]], limit: int) -> tuple[list[Row], str | None]:
    """Given up to ``limit + 1`` ``(item, sequence number)`` rows in order, the page's items
    and the cursor of the next page (its last sequence number)."""
    page, cursor = split_page(rows, limit=limit, key=lambda row: [row[1]])
    return [item for item, _ in page], cursor
