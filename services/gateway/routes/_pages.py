"""Helpers of the list routes."""

from __future__ import annotations

from shared.pagination import PageQuery, decode_cursor


def after_key(query: PageQuery) -> str | None:
    """The single text sort key a list resumes after, from the query's cursor."""
    if not query.cursor:
        return None
    return str(decode_cursor(query.cursor, kinds=(str,))[0])
