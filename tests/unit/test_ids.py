"""UUIDv7 identifiers: layout, time order and per-process monotonicity."""

from __future__ import annotations

import time
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.ids import new_id, uuid7, uuid7_unix_ms

unix_ms = st.integers(min_value=0, max_value=(1 << 48) - 1)
rand = st.binary(min_size=10, max_size=10)


@given(unix_ms, rand)
def test_version_variant_and_timestamp_bits(ms: int, tail: bytes) -> None:
    value = uuid7(unix_ms=ms, rand=tail)
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert uuid7_unix_ms(value) == ms
    assert uuid7_unix_ms(str(value)) == ms


@given(unix_ms, unix_ms, rand, rand)
def test_ids_sort_by_their_millisecond(a: int, b: int, rand_a: bytes, rand_b: bytes) -> None:
    first, second = uuid7(unix_ms=a, rand=rand_a), uuid7(unix_ms=b, rand=rand_b)
    if a < b:
        assert first < second and str(first) < str(second)
    elif a > b:
        assert first > second and str(first) > str(second)


@given(unix_ms, rand)
def test_the_same_inputs_give_the_same_id(ms: int, tail: bytes) -> None:
    assert uuid7(unix_ms=ms, rand=tail) == uuid7(unix_ms=ms, rand=tail)


@given(unix_ms, st.binary(min_size=10, max_size=10), st.binary(min_size=10, max_size=10))
def test_the_random_part_lands_in_the_id(ms: int, one: bytes, other: bytes) -> None:
    def random_bits(value: uuid.UUID) -> int:
        return ((value.int >> 64) & 0x0FFF) << 62 | (value.int & ((1 << 62) - 1))

    a, b = uuid7(unix_ms=ms, rand=one), uuid7(unix_ms=ms, rand=other)
    expected = (int.from_bytes(one[:2], "big") & 0x0FFF) << 62 | (
        int.from_bytes(one[2:], "big") & ((1 << 62) - 1)
    )
    assert random_bits(a) == expected
    assert (a == b) == (random_bits(a) == random_bits(b))


@pytest.mark.parametrize("bad_ms", [-1, 1 << 48])
def test_a_timestamp_outside_48_bits_is_refused(bad_ms: int) -> None:
    with pytest.raises(ValueError, match="48 bits"):
        uuid7(unix_ms=bad_ms, rand=bytes(10))


@pytest.mark.parametrize("size", [0, 9, 11])
def test_rand_must_be_ten_bytes(size: int) -> None:
    with pytest.raises(ValueError, match="10 bytes"):
        uuid7(unix_ms=0, rand=bytes(size))


def test_new_ids_are_strictly_increasing_and_carry_the_current_time() -> None:
    before = time.time_ns() // 1_000_000
    ids = [new_id() for _ in range(5000)]
    after = time.time_ns() // 1_000_000
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(i).version == 7 for i in ids)
    # Within one millisecond the counter may carry the timestamp a little past the clock.
    assert before <= uuid7_unix_ms(ids[0]) and uuid7_unix_ms(ids[-1]) <= after + 1
