"""shared.pagination: opaque cursors, page splitting, limits."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.pagination import (
    MAX_LIMIT,
    InvalidCursor,
    PageQuery,
    decode_cursor,
    encode_cursor,
    seq_cursor,
    seq_page,
    split_page,
)

BIGINTS = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@given(st.lists(st.one_of(st.text(max_size=40), BIGINTS), min_size=1, max_size=3))
def test_cursor_round_trips(key: list[str | int]) -> None:
    cursor = encode_cursor(key)
    assert "=" not in cursor and "/" not in cursor and "+" not in cursor
    assert decode_cursor(cursor, length=len(key)) == tuple(key)
    kinds = tuple(type(part) for part in key)
    assert decode_cursor(cursor, kinds=kinds) == tuple(key)


@pytest.mark.parametrize(
    ("key", "kinds"),
    [
        (["abc"], (int,)),  # a text key where the column is a number: never reaches SQL
        ([7], (str,)),
        ([1, "x"], (int, int)),
        ([2**63], (int,)),  # beyond bigint
        ([-(2**63) - 1], None),
    ],
)
def test_a_hand_made_cursor_of_the_wrong_kinds_is_422(
    key: list[str | int], kinds: tuple[type, ...] | None
) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(encode_cursor(key), length=len(key), kinds=kinds)


@pytest.mark.parametrize("cursor", ["", "!!!", "bm90LWpzb24", encode_cursor(["a", "b"])])
def test_bad_cursor_is_422_invalid_cursor(cursor: str) -> None:
    with pytest.raises(InvalidCursor) as caught:
        decode_cursor(cursor, length=1)
    assert caught.value.status == 422 and caught.value.code == "invalid_cursor"


def test_split_page_gives_a_cursor_only_when_more_rows_exist() -> None:
    rows = ["a", "b", "c"]
    page, cursor = split_page(rows, limit=2, key=lambda r: (r,))
    assert page == ["a", "b"] and cursor is not None
    assert decode_cursor(cursor, length=1) == ("b",)
    assert split_page(rows, limit=3, key=lambda r: (r,)) == (rows, None)
    assert split_page([], limit=3, key=lambda r: (r,)) == ([], None)


def test_seq_page_keeps_the_items_and_its_cursor_carries_the_last_sequence() -> None:
    rows = [("a", 7), ("b", 5), ("c", 2)]
    items, cursor = seq_page(rows, 2)
    assert items == ["a", "b"] and seq_cursor(cursor) == 5
    assert seq_page(rows, 3) == (["a", "b", "c"], None)
    assert seq_cursor(None) is None
    with pytest.raises(InvalidCursor):
        seq_cursor(encode_cursor(["5"]))


def test_limit_defaults_to_50_and_is_bounded() -> None:
    assert msgspec.convert({}, PageQuery).limit == 50
    assert msgspec.convert({"limit": "500"}, PageQuery, strict=False).limit == MAX_LIMIT
    for bad in ("0", "501", "-1"):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert({"limit": bad}, PageQuery, strict=False)
