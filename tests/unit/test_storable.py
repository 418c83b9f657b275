"""shared.storable: what a consumer's PostgreSQL would refuse is found, with its path."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest

from shared.storable import (
    BIGINT_MAX,
    BIGINT_MIN,
    find_unstorable,
    storable_text,
)


class Inner(msgspec.Struct):
    name: str
    count: int = 0


class Outer(msgspec.Struct):
    items: list[Inner]
    at: dt.datetime | None = None


def test_ordinary_values_are_storable() -> None:
    value = Outer(
        items=[Inner("café ✓", BIGINT_MAX), Inner("x", BIGINT_MIN)],
        at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    )
    assert find_unstorable(value) is None
    assert find_unstorable({"a": [1, 2.5, None, True, b"\x00bytes", dt.date(1, 1, 1)]}) is None


@pytest.mark.parametrize(
    ("value", "path"),
    [
        (Outer(items=[Inner("ok"), Inner("a\x00b")]), "$.items[1].name"),
        (Outer(items=[Inner("ok", 2**63)]), "$.items[0].count"),
        (Outer(items=[Inner("ok", -(2**63) - 1)]), "$.items[0].count"),
        ({"summary": "x\x00"}, "$.summary"),
        ({"values": [1.0, float("nan")]}, "$.values[1]"),
        ({"values": [float("inf")]}, "$.values[0]"),
        ({"s": "\ud800"}, "$.s"),
        ({"a\x00b": 1}, "$['a\\x00b']"),
    ],
)
def test_the_first_unstorable_part_is_named(value: object, path: str) -> None:
    problem = find_unstorable(value)
    assert problem is not None
    assert problem.path == path


@pytest.mark.parametrize("text", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_times_outside_utc_range_at_any_offset(text: str) -> None:
    at = dt.datetime.fromisoformat(text)
    problem = find_unstorable(Outer(items=[], at=at))
    assert problem is not None
    assert problem.path == "$.at"
    # the same wall-clock time in UTC is fine: only the instant matters
    assert find_unstorable(Outer(items=[], at=at.replace(tzinfo=dt.UTC))) is None


def test_deep_nesting_is_refused_without_recursing() -> None:
    value: object = "leaf"
    for _ in range(100_000):
        value = [value]
    problem = find_unstorable(value, max_depth=64)
    assert problem is not None
    assert "nested deeper than 64" in problem.reason
    assert find_unstorable([[["x"]]], max_depth=64) is None


def test_storable_text_escapes_and_bounds() -> None:
    assert storable_text("a\x00b\ud800") == "a\\x00b\\ud800"
    assert find_unstorable(storable_text("a\x00b\ud800")) is None
    assert storable_text("plain") == "plain"
    assert storable_text("x" * 10, max_chars=5) == "xxxx…"
