"""GitHub's Link header for page-number lists: next and prev only, other parameters kept."""

from __future__ import annotations

from yarl import URL

from shared.page_links import page_link_header

BASE = URL("https://gate.example.org/api/v1/user/gpg_keys?sha=main&per_page=3")


def test_first_page_with_more_links_only_next() -> None:
    assert page_link_header(BASE, page=1, per_page=3, has_next=True) == (
        '<https://gate.example.org/api/v1/user/gpg_keys?sha=main&per_page=3&page=2>; rel="next"'
    )


def test_middle_page_links_both_ways_and_never_last() -> None:
    header = page_link_header(BASE, page=4, per_page=3, has_next=True)
    assert header is not None and 'rel="last"' not in header
    assert header.count("rel=") == 2 and "page=5" in header and "page=3" in header


def test_last_page_links_only_back_and_a_lone_page_has_no_header() -> None:
    assert page_link_header(BASE, page=2, per_page=3, has_next=False) == (
        '<https://gate.example.org/api/v1/user/gpg_keys?sha=main&per_page=3&page=1>; rel="prev"'
    )
    assert page_link_header(BASE, page=1, per_page=3, has_next=False) is None
