"""Licenses: SPDX expressions normalised with ``license-expression``, classified by a policy.

Categories, least to most restrictive: ``allowed < conditional < unknown < forbidden``.
``unknown`` sits above ``conditional``: a license nobody has looked at could be anything,
but it is not known to be forbidden. ``OR`` is the licensee's choice, so it takes its most
permissive branch; ``AND`` obliges every branch, so it takes the most restrictive. ``X WITH
exception`` is looked up as written first, then falls back to ``X`` (an exception only adds
permissions, so the base license's category is the safe bound).

Several license statements on one component (CycloneDX allows a list) all apply: they are
combined with ``AND``. A free-text name is mapped when the library knows it (``GPL 2.0``,
``(MIT OR Apache-2.0)`` written as a name); otherwise it stays one unknown license, keyed
by its text, so a policy or a waiver can still name it.

Waivers are pure data (license, optional purl scope, expiry) applied with ``now`` passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Literal

import msgspec
from license_expression import (
    ExpressionError,
    LicenseSymbol,
    LicenseWithExceptionSymbol,
    Licensing,
    get_spdx_licensing,
)

from .model import License
from .purls import InvalidPurl, parse_purl

Category = Literal["allowed", "conditional", "unknown", "forbidden"]
RANK: dict[Category, int] = {"allowed": 0, "conditional": 1, "unknown": 2, "forbidden": 3}
CATEGORIES: tuple[Category, ...] = ("allowed", "conditional", "unknown", "forbidden")


class LicensePolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Category per license id (``MIT``), id with exception (``GPL-2.0-only WITH
    Classpath-exception-2.0``), ``LicenseRef-...`` or free-text name.

    ``default`` applies to SPDX licenses the policy does not list; ``unknown`` to licenses
    SPDX does not know either (unrecognised names, LicenseRefs); ``no_license`` to a
    component that declares none.
    """

    categories: dict[str, Category] = {}
    default: Category = "unknown"
    unknown: Category = "unknown"
    no_license: Category = "unknown"


class Waiver(msgspec.Struct, frozen=True, kw_only=True):
    """Accept ``license`` (an id, a name or a whole expression) as allowed, for components
    whose purl matches ``purl`` (a purl without a version matches every version; None
    matches every component), until ``expires_at``."""

    id: str
    license: str
    reason: str = ""
    purl: str | None = None
    expires_at: datetime | None = None


class LicenseVerdict(msgspec.Struct, frozen=True, kw_only=True):
    category: Category
    expression: str | None  # the normalised expression that was classified
    reason: str
    unknown: tuple[str, ...] = ()  # licenses SPDX does not know
    waived_by: tuple[str, ...] = ()  # ids of the waivers that applied


# --- normalisation -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Leaf:
    key: str  # canonical SPDX id, LicenseRef, or the free text of an unknown name
    known: bool
    exception: str | None = None

    @property
    def text(self) -> str:
        return f"{self.key} WITH {self.exception}" if self.exception else self.key


@dataclass(frozen=True, slots=True)
class Op:
    operator: Literal["AND", "OR"]
    children: tuple[Node, ...]


Node = Leaf | Op


class Normalized(msgspec.Struct, frozen=True):
    """A license statement as SPDX would write it (``expression``), and its unknown parts."""

    expression: str | None
    unknown: tuple[str, ...]


@lru_cache(maxsize=1)
def _licensing() -> Licensing:
    return get_spdx_licensing()


def _render(node: Node, top: bool = True) -> str:
    if isinstance(node, Leaf):
        return node.text
    text = f" {node.operator} ".join(_render(child, False) for child in node.children)
    return text if top else f"({text})"


def _convert(licensing: Licensing, parsed: object) -> Node:
    if isinstance(parsed, LicenseWithExceptionSymbol):
        base, exception = parsed.license_symbol.key, parsed.exception_symbol.key
        known = base in licensing.known_symbols and exception in licensing.known_symbols
        return Leaf(base, known, exception)
    if isinstance(parsed, LicenseSymbol):
        return Leaf(parsed.key, parsed.key in licensing.known_symbols)
    operator: Literal["AND", "OR"] = "AND" if isinstance(parsed, licensing.AND) else "OR"
    children = tuple(_convert(licensing, arg) for arg in parsed.args)  # type: ignore[attr-defined]
    return Op(operator, children)


@lru_cache(maxsize=16384)
def parse_license_text(text: str, *, as_name: bool = False) -> Node | None:
    """The expression tree of a license id or expression, None for blank text. Text the
    library cannot parse is one unknown license; so is a name that maps to anything
    unknown (a name is mapped whole or not at all)."""
    stripped = " ".join(text.split())
    if not stripped or stripped.upper() in ("NOASSERTION", "NONE"):
        return None
    licensing = _licensing()
    try:
        parsed = licensing.parse(stripped, validate=False)
    except (ExpressionError, ValueError, TypeError):
        return Leaf(stripped, False)
    if parsed is None:
        return None
    node = _convert(licensing, parsed)
    if as_name and _unknown_leaves(node):
        return Leaf(stripped, False)
    return node


def _unknown_leaves(node: Node) -> list[Leaf]:
    if isinstance(node, Leaf):
        return [] if node.known else [node]
    return [leaf for child in node.children for leaf in _unknown_leaves(child)]


def license_tree(licenses: Iterable[License]) -> Node | None:
    """One tree for a component's license statements, ``AND``-ed together."""
    nodes: list[Node] = []
    for item in licenses:
        if item.expression:
            node = parse_license_text(item.expression)
        elif item.id:
            node = parse_license_text(item.id)
        elif item.name:
            node = parse_license_text(item.name, as_name=True)
        else:
            node = None
        if node is not None and node not in nodes:
            nodes.append(node)
    if not nodes:
        return None
    return nodes[0] if len(nodes) == 1 else Op("AND", tuple(nodes))


def normalize(licenses: Iterable[License]) -> Normalized:
    """The SPDX expression for a component's license statements and what SPDX does not
    know in it."""
    tree = license_tree(licenses)
    if tree is None:
        return Normalized(None, ())
    return Normalized(
        _render(tree), tuple(dict.fromkeys(leaf.text for leaf in _unknown_leaves(tree)))
    )


def normalize_expression(text: str) -> Normalized:
    return normalize([License(expression=text)])


# --- classification ----------------------------------------------------------------------


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()


def _waiver_applies(waiver: Waiver, purl: str | None, now: datetime) -> bool:
    if waiver.expires_at is not None and waiver.expires_at <= now:
        return False
    if waiver.purl is None:
        return True
    if purl is None:
        return False
    try:
        scope, target = parse_purl(waiver.purl), parse_purl(purl)
    except InvalidPurl:
        return False
    if (scope.type, scope.namespace, scope.name) != (target.type, target.namespace, target.name):
        return False
    return scope.version is None or scope.version == target.version


@dataclass(frozen=True, slots=True)
class _Result:
    category: Category
    reason: str
    waived_by: tuple[str, ...] = ()


class LicenseClassifier:
    """A policy and its waivers, prepared once, for classifying many components."""

    def __init__(self, policy: LicensePolicy, waivers: Sequence[Waiver] = ()) -> None:
        self.policy = policy
        self.waivers = tuple(waivers)
        # Policy keys are normalised like component licenses ("gpl-2.0+" is GPL-2.0-or-later).
        self._categories: dict[str, Category] = {}
        for key, category in policy.categories.items():
            node = parse_license_text(key)
            text = node.text if isinstance(node, Leaf) else key
            self._categories[_fold(text)] = category
            self._categories.setdefault(_fold(key), category)

    def classify(
        self, licenses: Iterable[License], *, purl: str | None = None, now: datetime
    ) -> LicenseVerdict:
        tree = license_tree(licenses)
        if tree is None:
            return LicenseVerdict(
                category=self.policy.no_license,
                expression=None,
                reason=f"no license declared: {self.policy.no_license} by policy",
            )
        expression = _render(tree)
        unknown = tuple(dict.fromkeys(leaf.text for leaf in _unknown_leaves(tree)))
        active = [w for w in self.waivers if _waiver_applies(w, purl, now)]
        whole = [w for w in active if _same_expression(w.license, tree)]
        if whole:
            return LicenseVerdict(
                category="allowed",
                expression=expression,
                reason=f"{expression}: waived by {_describe(whole[0])}",
                unknown=unknown,
                waived_by=tuple(w.id for w in whole),
            )
        result = self._evaluate(tree, active)
        return LicenseVerdict(
            category=result.category,
            expression=expression,
            reason=result.reason,
            unknown=unknown,
            waived_by=tuple(dict.fromkeys(result.waived_by)),
        )

    def _leaf(self, leaf: Leaf, waivers: list[Waiver]) -> _Result:
        for waiver in waivers:
            if _fold(waiver.license) in (_fold(leaf.text), _fold(leaf.key)) or _same_expression(
                waiver.license, leaf
            ):
                return _Result(
                    "allowed", f"{leaf.text} is waived by {_describe(waiver)}", (waiver.id,)
                )
        category, reason = self._leaf_by_policy(leaf)
        return _Result(category, reason)

    def _leaf_by_policy(self, leaf: Leaf) -> tuple[Category, str]:
        if leaf.exception is not None:
            category = self._categories.get(_fold(leaf.text))
            if category is not None:
                return category, f"{leaf.text} is {category} by policy"
        category = self._categories.get(_fold(leaf.key))
        if category is not None:
            if leaf.exception is not None:
                return category, (
                    f"{leaf.key} is {category} by policy ({leaf.exception} is not listed; the "
                    "base license decides)"
                )
            return category, f"{leaf.key} is {category} by policy"
        if not leaf.known:
            return (
                self.policy.unknown,
                f"{leaf.text} is not a known SPDX license: {self.policy.unknown}",
            )
        return (
            self.policy.default,
            f"{leaf.text} is not in the policy: {self.policy.default} by default",
        )

    def _evaluate(self, node: Node, waivers: list[Waiver]) -> _Result:
        if isinstance(node, Leaf):
            return self._leaf(node, waivers)
        results = [self._evaluate(child, waivers) for child in node.children]
        if node.operator == "OR":
            # The licensee picks one branch: the most permissive (first of equals).
            chosen = min(results, key=lambda r: RANK[r.category])
            waived_by = chosen.waived_by
            rule = "most permissive"
        else:
            # Every branch binds: the most restrictive decides, every waiver was needed.
            # Of equals, explain with one a waiver lifted: that is the news in the verdict.
            chosen = max(results, key=lambda r: (RANK[r.category], bool(r.waived_by)))
            waived_by = tuple(w for r in results for w in r.waived_by)
            rule = "most restrictive"
        reason = f"{_render(node)}: {node.operator} takes the {rule} branch; {chosen.reason}"
        return _Result(chosen.category, reason, waived_by)


def _same_expression(text: str, node: Node) -> bool:
    other = parse_license_text(text)
    return other is not None and _canonical(other) == _canonical(node)


def _canonical(node: Node) -> object:
    """Order-insensitive, de-duplicated, flattened form: ``A OR B`` equals ``B OR (A)``."""
    if isinstance(node, Leaf):
        return ("leaf", _fold(node.text))
    flat: set[object] = set()
    for child in node.children:
        form = _canonical(child)
        if isinstance(form, tuple) and form[0] == node.operator:
            flat.update(form[1])
        else:
            flat.add(form)
    if len(flat) == 1:
        return next(iter(flat))
    return (node.operator, frozenset(flat))


def _describe(waiver: Waiver) -> str:
    until = f" until {waiver.expires_at.isoformat()}" if waiver.expires_at else ""
    why = f": {waiver.reason}" if waiver.reason else ""
    return f"waiver {waiver.id}{until}{why}"


def classify(
    policy: LicensePolicy,
    licenses: Iterable[License],
    *,
    purl: str | None = None,
    waivers: Sequence[Waiver] = (),
    now: datetime,
) -> LicenseVerdict:
    """Classify one component's licenses (see ``LicenseClassifier`` for many)."""
    return LicenseClassifier(policy, waivers).classify(licenses, purl=purl, now=now)


def most_restrictive(categories: Iterable[Category]) -> Category:
    return max(categories, key=RANK.__getitem__, default="allowed")
