"""The pure part of search (shared/search.py): rank order, cursors' "after", merging ranked
lists into exact pages, LIKE escaping and the SQL the matcher writes in each mode."""

from __future__ import annotations

import random

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from shared.search import (
    SCORE_SCALE,
    Matcher,
    Params,
    after_clause,
    is_after,
    like_escape,
    merge_ranked,
    rank_order,
)


class Hit(msgspec.Struct, frozen=True):
    score_key: int
    kind: str
    id: str


hits = st.builds(
    Hit,
    score_key=st.integers(0, SCORE_SCALE),
    kind=st.sampled_from(["advisory", "artifact", "component", "project"]),
    id=st.text(min_size=1, max_size=6),
)


def _ranked(items: list[Hit]) -> list[Hit]:
    return sorted(set(items), key=lambda h: rank_order((h.score_key, h.kind, h.id)))


def test_best_score_first_then_kind_then_id() -> None:
    ranked = _ranked([Hit(5, "b", "x"), Hit(9, "z", "a"), Hit(5, "a", "y"), Hit(5, "a", "b")])
    assert ranked == [Hit(9, "z", "a"), Hit(5, "a", "b"), Hit(5, "a", "y"), Hit(5, "b", "x")]
    # Ids compare by code point, as COLLATE "C" does in SQL.
    assert _ranked([Hit(1, "a", "b"), Hit(1, "a", "B"), Hit(1, "a", "é")])[0].id == "B"


@given(st.lists(hits, max_size=40), st.lists(hits, max_size=40), st.integers(1, 10))
def test_pages_of_merged_lists_are_the_ranking_cut_into_pages(
    left: list[Hit], right: list[Hit], limit: int
) -> None:
    right = [h for h in right if h not in set(left)]
    expected = _ranked(left + right)
    pages: list[Hit] = []
    cursor = None
    while True:
        # Each source answers its first limit + 1 hits after the cursor, as the owners do.
        sources = [
            [h for h in _ranked(side) if is_after((h.score_key, h.kind, h.id), cursor)][: limit + 1]
            for side in (left, right)
        ]
        page, more = merge_ranked(sources, limit)
        pages += page
        if not more:
            break
        last = page[-1]
        cursor = (last.score_key, last.kind, last.id)
    assert pages == expected


def test_like_wildcards_are_literal() -> None:
    assert like_escape("50%_off\\") == "50\\%\\_off\\\\"


def test_the_matcher_in_each_mode() -> None:
    params = Params()
    substring = Matcher.create("Req_", None, params)
    assert params.values == ["Req_", "%Req\\_%", "Req\\_%"]
    assert substring.conditions("name") == ["name ILIKE $2"]
    assert substring.mode == "substring"
    trigram = Matcher.create("req", "public", Params())
    assert trigram.conditions("c.name") == [
        "c.name ILIKE $2",
        'c.name OPERATOR("public".%) $1',
        '$1 OPERATOR("public".<%) c.name',
    ]
    union = trigram.candidates("SELECT id", "t", ["a", "b"], where="x")
    assert union.count(" UNION ") == 5 and union.count(" AND x") == 6
    key = trigram.score_key(["name"])
    assert key.startswith("CASE WHEN (") and f"THEN {SCORE_SCALE}" in key


def test_after_a_cursor_within_and_across_kinds() -> None:
    assert after_clause("artifact", None, Params(), key="k", id_="i") == "true"
    cursor = (700, "artifact", "art_1")
    params = Params()
    assert after_clause("advisory", cursor, params, key="k", id_="i") == "k < $1"
    assert after_clause("component", cursor, params, key="k", id_="i") == "k <= $2"
    same = after_clause("artifact", cursor, params, key="k", id_="i")
    assert same == '(k < $3 OR (k = $3 AND i COLLATE "C" > $4))'
    assert params.values == [700, 700, 700, "art_1"]


def test_is_after_agrees_with_rank_order() -> None:
    keys = [(random.randint(0, 3), random.choice("ab"), random.choice("xyz")) for _ in range(50)]
    for a in keys:
        for b in keys:
            assert is_after(a, b) == (rank_order(a) > rank_order(b))
