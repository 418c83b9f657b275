"""What no consumer can store: the depth scan of raw JSON and the walk of decoded values."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.edge_limits import (
    MAX_JSON_DEPTH,
    refuse_too_deep,
    refuse_unstorable,
    too_deep,
    unstorable,
)
from shared.errors import ValidationFailed
from shared.storable import BIGINT_MAX as INT64_MAX
from shared.storable import BIGINT_MIN as INT64_MIN

PLUS_14 = dt.timezone(dt.timedelta(hours=14))
MINUS_14 = dt.timezone(-dt.timedelta(hours=14))


@pytest.mark.parametrize("depth", [10_000, 100_000])
def test_deep_arrays_and_objects_are_found_without_recursion(depth: int) -> None:
    arrays = b"[" * depth + b"]" * depth
    objects = b'{"a":' * depth + b"1" + b"}" * depth
    assert too_deep(arrays) == "$" + "[0]" * MAX_JSON_DEPTH
    assert too_deep(objects) == "$" + ".a" * MAX_JSON_DEPTH
    unclosed = b'{"a":' * depth  # malformed as well: still too deep, never a crash
    assert too_deep(unclosed) is not None


def test_the_limit_itself_is_accepted() -> None:
    at_limit = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert too_deep(at_limit) is None
    assert too_deep(b"[" + at_limit + b"]") is not None


def test_brackets_inside_strings_do_not_count() -> None:
    inside = json.dumps({"s": "[" * 500, "t": '"{' * 300, "u": "\\[" * 100}).encode()
    assert too_deep(inside) is None


def test_the_path_names_keys_and_array_positions() -> None:
    deep = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    raw = f'{{"x": [1, 2, {{"a \\"q\\"": 0, "b.c": {deep}}}]}}'.encode()
    assert too_deep(raw) == "$.x[2].b.c" + "[0]" * (MAX_JSON_DEPTH - 3)


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}",:\\ab'),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=40,
)


@given(_json, st.integers(min_value=1, max_value=6))
def test_the_scan_agrees_with_the_decoded_depth(value: Any, limit: int) -> None:
    raw = json.dumps(value).encode()
    assert (too_deep(raw, limit=limit) is not None) == (_depth(value) > limit)


def test_refuse_too_deep_is_a_422_naming_where() -> None:
    with pytest.raises(ValidationFailed) as refused:
        refuse_too_deep(b'{"metadata": ' + b"[" * 100 + b"]" * 100 + b"}")
    assert refused.value.code == "too_deep" and refused.value.status == 422
    assert refused.value.extra["errors"][0]["field"].startswith("$.metadata[0]")


class Inner(msgspec.Struct):
    when: dt.datetime | None = None
    count: int = 0


class Outer(msgspec.Struct):
    items: list[Inner]
    tags: dict[str, Any] = {}
    renamed: str = msgspec.field(default="", name="wire-name")
    maybe: str | msgspec.UnsetType = msgspec.UNSET


@pytest.mark.parametrize(
    ("value", "path"),
    [
        (Outer(items=[Inner(), Inner(count=INT64_MAX + 1)]), "$.items[1].count"),
        (Outer(items=[Inner(count=INT64_MIN - 1)]), "$.items[0].count"),
        (Outer(items=[], tags={"a": [1, "x\x00"]}), "$.tags.a[1]"),
        (Outer(items=[], tags={"k\x00": 1}), "$.tags['k\\x00']"),
        (Outer(items=[], renamed="a\x00"), "$['wire-name']"),  # as sent, not `renamed`
        (Outer(items=[Inner(when=dt.datetime(1, 1, 1, tzinfo=PLUS_14))]), "$.items[0].when"),
        (
            Outer(items=[Inner(when=dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=MINUS_14))]),
            "$.items[0].when",
        ),
        (Outer(items=[], tags={"f": float("inf")}), "$.tags.f"),
    ],
)
def test_the_first_unstorable_value_is_named(value: Outer, path: str) -> None:
    found = unstorable(value)
    assert found is not None and found[0] == path


@pytest.mark.parametrize(
    "value",
    [
        Outer(items=[Inner(count=INT64_MAX), Inner(count=INT64_MIN)]),
        Outer(items=[Inner(when=dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=PLUS_14))]),
        Outer(items=[Inner(when=dt.datetime(1, 1, 1, tzinfo=MINUS_14))]),
        Outer(items=[Inner(when=dt.datetime(1, 1, 1))]),  # naive: stored as it is
        Outer(items=[], tags={"t": True, "s": {"x", "y"}, "n": None, "r": "a\\u0000"}),
    ],
)
def test_storable_values_pass(value: Outer) -> None:
    assert unstorable(value) is None


def test_refuse_unstorable_says_where_in_the_request() -> None:
    with pytest.raises(ValidationFailed) as refused:
        refuse_unstorable({"project": "a\x00b"}, where="path")
    assert refused.value.extra["errors"] == [
        {"field": "$.project", "message": refused.value.extra["errors"][0]["message"], "in": "path"}
    ]
    assert (refused.value.status, refused.value.code) == (422, "validation_failed")
