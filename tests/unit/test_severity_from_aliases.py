"""An advisory without CVSS takes the highest rating among its aliases held in the database
(services/scanner/domain/severity.effective_rating), with property tests."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from services.scanner.domain.severity import LEVELS, UNKNOWN, Rating, effective_rating

CRITICAL = Rating("CRITICAL", 9.8, "CVSS_V3", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")
MEDIUM = Rating("MEDIUM", None, "database_specific")


def test_own_rating_wins_and_unknown_takes_the_aliases_highest() -> None:
    own = Rating("LOW", 2.0, "CVSS_V3", "v")
    assert effective_rating(own, {"CVE-1": CRITICAL}) == own
    derived = effective_rating(UNKNOWN, {"GHSA-x": MEDIUM, "CVE-1": CRITICAL})
    assert derived == Rating("CRITICAL", 9.8, "alias:CVE-1", CRITICAL.vector)
    assert effective_rating(UNKNOWN, {}) == UNKNOWN
    assert effective_rating(UNKNOWN, {"CVE-1": UNKNOWN}) == UNKNOWN
    # A rating that was itself derived from an alias is no source: only records' own CVSS.
    assert effective_rating(UNKNOWN, {"PYSEC-1": derived}) == UNKNOWN


ratings_st = st.builds(
    Rating,
    st.sampled_from(LEVELS),
    st.none() | st.floats(0.0, 10.0),
    st.sampled_from(["CVSS_V3", "database_specific", None]),
)
aliases_st = st.dictionaries(st.sampled_from(["CVE-1", "CVE-2", "GHSA-a", "PYSEC-b"]), ratings_st)


@settings(max_examples=300, deadline=None)
@given(aliases_st)
def test_derivation_is_order_free_and_never_lower_than_an_alias(
    aliases: dict[str, Rating],
) -> None:
    result = effective_rating(UNKNOWN, aliases)
    assert effective_rating(UNKNOWN, dict(reversed(list(aliases.items())))) == result
    rated = [r for r in aliases.values() if r.level != "UNKNOWN"]
    if not rated:
        assert result == UNKNOWN
        return
    assert result.source is not None and result.source.startswith("alias:")
    rank = LEVELS.index
    assert all(rank(result.level) <= rank(r.level) for r in rated)
    assert aliases[result.source.removeprefix("alias:")].level == result.level
