"""Search: one ranking for every owner of searchable rows, so that the gateway can merge the
ranked lists of its own read model and the scanner's into one page.

A hit's rank is ``(score_key DESC, kind, id)``. ``score_key`` is an integer in 0..10,000:
10,000 when a searched field equals the query (case-insensitively), else
``tier * 2,500 + similarity * 2,499`` where ``tier`` is 2 when a field starts with the
query, 1 when one contains it, 0 otherwise, and ``similarity`` (0..1) is pg_trgm's
``greatest(similarity, word_similarity)`` of the best field. So exact matches come first,
then prefixes, then substrings, then fuzzy matches, the tiers never overlapping; the public
``score`` is ``score_key / 10,000`` (exact 1.0, prefix 0.5..0.75, substring 0.25..0.5,
fuzzy below 0.25). Ids are compared byte-wise (``COLLATE "C"`` in
SQL, plain ``str`` order in Python) so that SQL pages and the gateway's merge agree.

Two modes, chosen by what the database has:

* ``trigram``: the ``pg_trgm`` extension is installed and usable. A field matches when it
  contains the query (``ILIKE``), or is similar to it (``%``), or contains a word similar to
  it (``<%``); GIN ``gin_trgm_ops`` indexes serve all three, so typos are tolerated and the
  search stays an index scan at any size.
* ``substring``: no ``pg_trgm`` (the embedded ``pgserver`` wheel ships without the contrib
  extensions). A field matches only when it contains the query (``ILIKE``, no index), and
  ``similarity`` is the share of the field the query covers. No typo tolerance.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

import asyncpg

from contracts.rpc.search import SearchHit, SearchKind

Mode = Literal["trigram", "substring"]

QUERY_MIN = 2
QUERY_MAX = 200
SCORE_SCALE = 10_000
# A tier's share of score_key; similarity fills less than one share.
_PER_POINT = SCORE_SCALE // 4

SearchKey = tuple[int, str, str]  # (score_key, kind, id)


def like_escape(text: str) -> str:
    """``text`` with LIKE's wildcards and its escape character taken literally."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def score_of(score_key: int) -> float:
    return score_key / SCORE_SCALE


def rank_order(key: SearchKey) -> tuple[int, str, str]:
    """The sort key of a hit: highest score first, then kind, then id."""
    score_key, kind, hit_id = key
    return (-score_key, kind, hit_id)


def is_after(key: SearchKey, cursor: SearchKey | None) -> bool:
    return cursor is None or rank_order(key) > rank_order(cursor)


class Ranked(Protocol):
    @property
    def score_key(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def id(self) -> str: ...


def key_of(hit: Ranked) -> SearchKey:
    return (hit.score_key, hit.kind, hit.id)


H = TypeVar("H", bound=Ranked)


def merge_ranked(lists: Iterable[Sequence[H]], limit: int) -> tuple[list[H], bool]:
    """The first ``limit`` hits of ranked lists merged in rank order, and whether any is
    left beyond them. Each list must hold its own first ``limit + 1`` hits (after the same
    cursor): then the merged page is exact and "more" is known without another query."""
    merged = list(heapq.merge(*lists, key=lambda hit: rank_order(key_of(hit))))
    return merged[:limit], len(merged) > limit


# ---- SQL ---------------------------------------------------------------------------------------
@dataclass
class Params:
    """Numbered query arguments: ``add`` returns the placeholder of a new one."""

    values: list[Any] = field(default_factory=list)

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


@dataclass(frozen=True)
class Matcher:
    """SQL for matching and scoring text columns against one query, in one mode.

    ``trigram_schema`` is the schema pg_trgm's functions live in (None: substring mode).
    The query's three arguments (the text, ``%q%`` and ``q%``) are added once to ``params``.
    """

    q: str
    trigram_schema: str | None
    params: Params
    _q: str = ""
    _contains: str = ""
    _prefix: str = ""

    @classmethod
    def create(cls, q: str, trigram_schema: str | None, params: Params) -> Matcher:
        escaped = like_escape(q)
        return cls(
            q=q,
            trigram_schema=trigram_schema,
            params=params,
            _q=params.add(q),
            _contains=params.add(f"%{escaped}%"),
            _prefix=params.add(f"{escaped}%"),
        )

    @property
    def mode(self) -> Mode:
        return "substring" if self.trigram_schema is None else "trigram"

    def _fn(self, name: str) -> str:
        return f'"{self.trigram_schema}".{name}'

    def conditions(self, column: str) -> list[str]:
        """What makes ``column`` match: it contains the query, or (trigram mode) is similar
        to it, or has a word similar to it. Each is an index condition of a gin_trgm_ops
        index on ``column``."""
        contains = f"{column} ILIKE {self._contains}"
        if self.trigram_schema is None:
            return [contains]
        op = f'OPERATOR("{self.trigram_schema}".%)'
        word_op = f'OPERATOR("{self.trigram_schema}".<%)'
        return [contains, f"{column} {op} {self._q}", f"{self._q} {word_op} {column}"]

    def candidates(
        self, select: str, table: str, columns: Sequence[str], *, where: str = "true"
    ) -> str:
        """``SELECT <select> FROM <table>`` of the rows where one of ``columns`` matches: one
        UNION branch per condition, each a plain bitmap scan of its own index. (ORed in one
        WHERE, the planner costs the trigram operators like an equality and, below some
        ten thousand rows, reads the whole table instead.)"""
        return " UNION ".join(
            f"{select} FROM {table} WHERE {condition} AND {where}"
            for column in columns
            for condition in self.conditions(column)
        )

    def tier(self, column: str) -> str:
        return (
            f"CASE WHEN lower({column}) = lower({self._q}) THEN 3 "
            f"WHEN {column} ILIKE {self._prefix} THEN 2 "
            f"WHEN {column} ILIKE {self._contains} THEN 1 ELSE 0 END"
        )

    def similarity(self, column: str) -> str:
        if self.trigram_schema is None:
            # How much of the field the query covers: "requests" ranks above
            # "types-requests-oauthlib" for "requests".
            return (
                f"CASE WHEN {column} ILIKE {self._contains} THEN "
                f"length({self._q})::float8 / greatest(length({column}), 1) ELSE 0 END"
            )
        return (
            f"COALESCE(greatest({self._fn('similarity')}({column}, {self._q}), "
            f"{self._fn('word_similarity')}({self._q}, {column})), 0)::float8"
        )

    def score_key(self, columns: Sequence[str], *, extra_tiers: Sequence[str] = ()) -> str:
        """The integer score of a row over ``columns`` (``extra_tiers`` / similarities from
        elsewhere, e.g. an array's best element, may be added as ``(tier, similarity)``
        expressions with :meth:`score_key_of`)."""
        tiers = [self.tier(c) for c in columns]
        sims = [self.similarity(c) for c in columns]
        return self.score_key_of(tiers + list(extra_tiers), sims)

    def score_key_of(self, tiers: Sequence[str], similarities: Sequence[str]) -> str:
        tier = tiers[0] if len(tiers) == 1 else f"greatest({', '.join(tiers)})"
        sim = similarities[0] if len(similarities) == 1 else f"greatest({', '.join(similarities)})"
        # Tiers never overlap: a substring with similarity 1 stays below every prefix.
        return (
            f"CASE WHEN ({tier}) >= 3 THEN {SCORE_SCALE} ELSE ({tier}) * {_PER_POINT} "
            f"+ round(({sim}) * {_PER_POINT - 1})::integer END"
        )


def after_clause(kind: str, cursor: SearchKey | None, params: Params, *, key: str, id_: str) -> str:
    """The condition "after ``cursor``" for rows of one ``kind`` whose score is ``key`` and
    whose id is ``id_`` (the rank is score desc, kind, id; ids compared byte-wise)."""
    if cursor is None:
        return "true"
    score_key, cursor_kind, cursor_id = cursor
    at = params.add(score_key)
    if kind > cursor_kind:
        return f"{key} <= {at}"
    if kind < cursor_kind:
        return f"{key} < {at}"
    after_id = params.add(cursor_id)
    return f'({key} < {at} OR ({key} = {at} AND {id_} COLLATE "C" > {after_id}))'


def order_by(*, key: str, id_: str) -> str:
    return f'{key} DESC, {id_} COLLATE "C"'


@dataclass(frozen=True)
class KindQuery:
    """One kind's statement: its arguments, how a row becomes a hit, and its mode."""

    sql: str
    args: list[Any]
    hit: Callable[[asyncpg.Record], SearchHit]
    mode: Mode

    async def plan_settings(self, conn: asyncpg.Connection) -> None:
        """In a transaction: what the statement's plan needs. pg_trgm's operators are costed
        like an equality (procost 1) though a similarity costs ~10 us a row, so on a table
        of a few thousand rows the planner prefers reading it all (5,000 advisories: 44 ms)
        to the trigram index (0.1 ms). Scans of whole tables are made the last resort."""
        if self.mode == "trigram":
            await conn.execute("SET LOCAL enable_seqscan = off")

    async def run(self, pool: asyncpg.Pool) -> list[SearchHit]:
        async with pool.acquire() as conn, conn.transaction(readonly=True):
            await self.plan_settings(conn)
            rows = await conn.fetch(self.sql, *self.args)
        return [self.hit(row) for row in rows]


def paged(kind: str, inner: str, params: Params, after: SearchKey | None, limit: int) -> str:
    """``inner`` (rows with ``id`` and ``score_key``) after the cursor, in rank order."""
    condition = after_clause(kind, after, params, key="s.score_key", id_="s.id")
    return (
        f"SELECT * FROM ({inner}) s WHERE {condition} "
        f"ORDER BY {order_by(key='s.score_key', id_='s.id')} LIMIT {params.add(limit)}"
    )


@dataclass(frozen=True)
class KindStatement:
    """One kind's statement in the making: its arguments and its query's matcher. Every kind
    is built the same way: ``start``, the inner SELECT (rows with ``id`` and ``score_key``)
    from ``m`` and ``scoped``, then ``query`` with how a row becomes a hit (``hit``)."""

    kind: SearchKind
    params: Params
    m: Matcher

    @classmethod
    def start(cls, kind: SearchKind, q: str, trigram_schema: str | None) -> KindStatement:
        params = Params()
        return cls(kind, params, Matcher.create(q, trigram_schema, params))

    def scoped(self, column: str, project_ids: list[str] | None) -> str:
        return scoped(self.params, column, project_ids)

    def hit(self, row: asyncpg.Record, **fields: Any) -> SearchHit:
        """A hit of this kind from ``row`` (its ``score_key``) and the other ``fields``."""
        return SearchHit(
            kind=self.kind,
            score=score_of(row["score_key"]),
            score_key=row["score_key"],
            **fields,
        )

    def query(
        self,
        inner: str,
        hit: Callable[[asyncpg.Record], SearchHit],
        *,
        after: SearchKey | None,
        limit: int,
    ) -> KindQuery:
        """``inner``'s rows after the cursor, in rank order, ``limit`` of them."""
        sql = paged(self.kind, inner, self.params, after, limit)
        return KindQuery(sql, self.params.values, hit, self.m.mode)


def scoped(params: Params, column: str, project_ids: list[str] | None) -> str:
    """``column`` is one of ``project_ids`` (None: any project)."""
    if project_ids is None:
        return "true"
    return f"{column} = ANY({params.add(project_ids)}::text[])"


async def trigram_schema(db: asyncpg.Pool | asyncpg.Connection) -> str | None:
    """The schema of an installed pg_trgm this role may use (None: substring mode)."""
    found: Any = await db.fetchval(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'pg_trgm' AND has_schema_privilege(n.oid, 'USAGE')"
    )
    return str(found) if found is not None else None
