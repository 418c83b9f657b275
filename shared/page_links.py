"""GitHub's page-number pagination: ``?page=&per_page=`` in, a ``Link`` header out.

Used by lists that mirror GitHub's own (a git history, a user's signing keys), where clients
written for GitHub follow ``Link``. Only ``next`` and ``prev`` are sent, never ``last``: the
owner answers whether a next page exists (one row more than the page), never a total count.
"""

from __future__ import annotations

from yarl import URL


def page_link_header(url: URL, *, page: int, per_page: int, has_next: bool) -> str | None:
    """The ``Link`` header for page ``page`` of ``url`` (its other query parameters kept),
    or None for a lone first page."""
    links = []
    if has_next:
        links.append(f'<{_with_page(url, page + 1, per_page)}>; rel="next"')
    if page > 1:
        links.append(f'<{_with_page(url, page - 1, per_page)}>; rel="prev"')
    return ", ".join(links) or None


def _with_page(url: URL, page: int, per_page: int) -> URL:
    return url.update_query(page=str(page), per_page=str(per_page))
