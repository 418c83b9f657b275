"""License normalisation, policy classification and waivers; OR/AND laws as properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.scanner.domain.licenses import (
    CATEGORIES,
    RANK,
    Category,
    LicenseClassifier,
    LicensePolicy,
    Waiver,
    classify,
    normalize,
    normalize_expression,
)
from services.scanner.domain.model import License

NOW = datetime(2026, 6, 1, tzinfo=UTC)

POLICY = LicensePolicy(
    categories={
        "MIT": "allowed",
        "Apache-2.0": "allowed",
        "BSD-3-Clause": "allowed",
        "LGPL-2.1-only": "conditional",
        "MPL-2.0": "conditional",
        "GPL-2.0-only": "forbidden",
        "gpl-3.0+": "forbidden",  # policy keys are normalised too: GPL-3.0-or-later
        "GPL-2.0-only WITH Classpath-exception-2.0": "conditional",
        "LicenseRef-acme": "allowed",
        "Acme Corp Proprietary": "forbidden",
    },
    default="conditional",
    unknown="unknown",
    no_license="forbidden",
)


def verdict(
    *licenses: License, purl: str | None = None, waivers: tuple[Waiver, ...] = ()
) -> tuple[str, str]:
    result = classify(POLICY, licenses, purl=purl, waivers=waivers, now=NOW)
    return result.category, result.reason


# --- normalisation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expression", "unknown"),
    [
        ("mit", "MIT", ()),
        ("Apache-2.0 or MIT", "Apache-2.0 OR MIT", ()),
        ("GPL-2.0+", "GPL-2.0-or-later", ()),
        ("(MIT)", "MIT", ()),
        ("MIT OR (Apache-2.0 AND BSD-3-Clause)", "MIT OR (Apache-2.0 AND BSD-3-Clause)", ()),
        (
            "gpl-2.0-only with classpath-exception-2.0",
            "GPL-2.0-only WITH Classpath-exception-2.0",
            (),
        ),
        ("LicenseRef-acme", "LicenseRef-acme", ("LicenseRef-acme",)),
        ("MIT OR Frobnicate-1.0", "MIT OR Frobnicate-1.0", ("Frobnicate-1.0",)),
        ("MIT OR", "MIT OR", ("MIT OR",)),  # unparseable: one unknown license, kept as written
        ("NOASSERTION", None, ()),
    ],
)
def test_normalize_expression(text: str, expression: str | None, unknown: tuple[str, ...]) -> None:
    result = normalize_expression(text)
    assert (result.expression, result.unknown) == (expression, unknown)


def test_free_text_names_are_mapped_only_when_the_library_knows_them() -> None:
    assert normalize([License(name="GPL 2.0")]).expression == "GPL-2.0-only"
    assert normalize([License(name="(MIT OR Apache-2.0)")]).expression == "MIT OR Apache-2.0"
    unknown = normalize([License(name="The Apache Software License, Version 2.0")])
    assert unknown.expression == "The Apache Software License, Version 2.0"
    assert unknown.unknown == ("The Apache Software License, Version 2.0",)
    # A name is mapped whole or not at all: no half-known "MPL 2.0 OR EPL 1.0".
    assert normalize([License(name="MPL 2.0 or EPL 1.0")]).unknown == ("MPL 2.0 or EPL 1.0",)


def test_several_statements_all_apply() -> None:
    result = normalize([License(id="MIT"), License(name="Custom"), License(id="mit")])
    assert result.expression == "MIT AND Custom"
    assert result.unknown == ("Custom",)


# --- classification ----------------------------------------------------------------------


def test_single_ids() -> None:
    assert verdict(License(id="MIT")) == ("allowed", "MIT is allowed by policy")
    assert verdict(License(id="GPL-3.0-or-later"))[0] == "forbidden"
    assert verdict(License(id="ISC")) == (
        "conditional",
        "ISC is not in the policy: conditional by default",
    )
    assert verdict(License(id="LicenseRef-acme"))[0] == "allowed"
    category, reason = verdict(License(name="Unheard Of License"))
    assert category == "unknown" and "not a known SPDX license" in reason
    assert verdict(License(name="Acme Corp Proprietary"))[0] == "forbidden"  # named by the policy
    assert verdict() == ("forbidden", "no license declared: forbidden by policy")


def test_or_takes_the_most_permissive_branch() -> None:
    category, reason = verdict(License(expression="GPL-2.0-only OR MIT"))
    assert category == "allowed"
    assert (
        reason
        == "GPL-2.0-only OR MIT: OR takes the most permissive branch; MIT is allowed by policy"
    )


def test_and_takes_the_most_restrictive_branch() -> None:
    category, reason = verdict(License(expression="MIT AND (LGPL-2.1-only OR GPL-2.0-only)"))
    assert category == "conditional"
    assert "AND takes the most restrictive branch" in reason
    assert verdict(License(expression="MIT AND Unheard-1.0"))[0] == "unknown"
    assert verdict(License(expression="GPL-2.0-only AND Unheard-1.0"))[0] == "forbidden"


def test_with_exceptions() -> None:
    assert (
        verdict(License(expression="GPL-2.0-only WITH Classpath-exception-2.0"))[0] == "conditional"
    )
    category, reason = verdict(License(expression="GPL-2.0-only WITH LLVM-exception"))
    assert category == "forbidden"
    assert "the base license decides" in reason


def test_statements_combine_with_and() -> None:
    assert verdict(License(id="MIT"), License(id="GPL-2.0-only"))[0] == "forbidden"


# --- waivers -----------------------------------------------------------------------------


def test_a_waiver_on_a_license_id() -> None:
    waiver = Waiver(
        id="w1", license="GPL-2.0-only", reason="legal approved", expires_at=NOW + timedelta(days=1)
    )
    result = classify(
        POLICY, [License(expression="MIT AND GPL-2.0-only")], waivers=[waiver], now=NOW
    )
    assert result.category == "allowed"
    assert result.waived_by == ("w1",)
    assert "waiver w1 until 2026-06-02T00:00:00+00:00: legal approved" in result.reason


def test_a_waiver_on_a_whole_expression_is_order_insensitive() -> None:
    waiver = Waiver(id="w2", license="(GPL-2.0-only AND mpl-2.0)")
    result = classify(
        POLICY, [License(expression="MPL-2.0 AND GPL-2.0-only")], waivers=[waiver], now=NOW
    )
    assert (result.category, result.waived_by) == ("allowed", ("w2",))
    other = classify(
        POLICY, [License(expression="MPL-2.0 OR GPL-2.0-only")], waivers=[waiver], now=NOW
    )
    assert other.waived_by == ()


def test_a_waiver_on_an_unknown_name() -> None:
    waiver = Waiver(id="w3", license="unheard of license")
    result = classify(POLICY, [License(name="Unheard Of License")], waivers=[waiver], now=NOW)
    assert result.category == "allowed"


def test_expired_waivers_do_not_apply() -> None:
    waiver = Waiver(id="w4", license="GPL-2.0-only", expires_at=NOW)
    result = classify(POLICY, [License(id="GPL-2.0-only")], waivers=[waiver], now=NOW)
    assert (result.category, result.waived_by) == ("forbidden", ())
    later = classify(
        POLICY, [License(id="GPL-2.0-only")], waivers=[waiver], now=NOW - timedelta(seconds=1)
    )
    assert later.category == "allowed"


@pytest.mark.parametrize(
    ("scope", "purl", "applies"),
    [
        (None, None, True),
        (None, "pkg:npm/a@1.0.0", True),
        ("pkg:npm/a", "pkg:npm/a@1.0.0", True),
        ("pkg:npm/a", "pkg:npm/a@2.0.0", True),
        ("pkg:npm/a@1.0.0", "pkg:npm/a@1.0.0", True),
        ("pkg:npm/a@1.0.0", "pkg:npm/a@2.0.0", False),
        ("pkg:npm/a", "pkg:npm/b@1.0.0", False),
        ("pkg:npm/a", "pkg:pypi/a@1.0.0", False),
        ("pkg:npm/%40s/a", "pkg:npm/@s/a@1", True),
        ("pkg:npm/a", None, False),
        ("not-a-purl", "pkg:npm/a@1", False),
    ],
)
def test_waiver_purl_scope(scope: str | None, purl: str | None, applies: bool) -> None:
    waiver = Waiver(id="w", license="GPL-2.0-only", purl=scope)
    result = classify(POLICY, [License(id="GPL-2.0-only")], purl=purl, waivers=[waiver], now=NOW)
    assert (result.category == "allowed") is applies


def test_only_the_chosen_or_branch_reports_its_waiver() -> None:
    waiver = Waiver(id="w5", license="MPL-2.0")
    result = classify(POLICY, [License(expression="MIT OR MPL-2.0")], waivers=[waiver], now=NOW)
    assert (result.category, result.waived_by) == ("allowed", ())


# --- properties --------------------------------------------------------------------------

IDS = [
    "MIT",
    "Apache-2.0",
    "GPL-2.0-only",
    "LGPL-2.1-only",
    "MPL-2.0",
    "ISC",
    "Zlib",
    "LicenseRef-x",
    "Weird-1",
]

expressions = st.recursive(
    st.sampled_from(IDS),
    lambda children: st.tuples(
        st.sampled_from(["AND", "OR"]), st.lists(children, min_size=2, max_size=4)
    ).map(lambda t: "(" + f" {t[0]} ".join(t[1]) + ")"),
    max_leaves=12,
)
policies = st.builds(
    LicensePolicy,
    categories=st.dictionaries(st.sampled_from(IDS), st.sampled_from(CATEGORIES)),
    default=st.sampled_from(CATEGORIES),
    unknown=st.sampled_from(CATEGORIES),
)


def rank(policy: LicensePolicy, expression: str, waivers: tuple[Waiver, ...] = ()) -> int:
    category: Category = (
        LicenseClassifier(policy, waivers)
        .classify([License(expression=expression)], now=NOW)
        .category
    )
    return RANK[category]


@settings(max_examples=150, deadline=None)
@given(policy=policies, branches=st.lists(expressions, min_size=2, max_size=4))
def test_or_is_exactly_as_restrictive_as_its_most_permissive_branch(
    policy: LicensePolicy, branches: list[str]
) -> None:
    combined = rank(policy, " OR ".join(f"({b})" for b in branches))
    assert combined == min(rank(policy, b) for b in branches)


@settings(max_examples=150, deadline=None)
@given(policy=policies, branches=st.lists(expressions, min_size=2, max_size=4))
def test_and_is_exactly_as_restrictive_as_its_most_restrictive_branch(
    policy: LicensePolicy, branches: list[str]
) -> None:
    combined = rank(policy, " AND ".join(f"({b})" for b in branches))
    assert combined == max(rank(policy, b) for b in branches)


@settings(max_examples=100, deadline=None)
@given(policy=policies, expression=expressions, waived=st.sampled_from(IDS), expired=st.booleans())
def test_waivers_never_make_a_verdict_stricter_and_expired_ones_change_nothing(
    policy: LicensePolicy, expression: str, waived: str, expired: bool
) -> None:
    waiver = Waiver(id="w", license=waived, expires_at=NOW - timedelta(days=1) if expired else None)
    with_waiver = rank(policy, expression, (waiver,))
    without = rank(policy, expression)
    assert with_waiver <= without
    if expired:
        assert with_waiver == without


@settings(max_examples=100, deadline=None)
@given(expression=expressions)
def test_normalisation_is_idempotent(expression: str) -> None:
    once = normalize_expression(expression).expression
    assert once is not None
    assert normalize_expression(once).expression == once
