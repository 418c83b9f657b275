"""Strong ETags from the stream sequence of a resource's last event, and If-Match checks."""

from __future__ import annotations

import re

from services.gateway.domain.errors import EtagMismatch

_VERSION_TAG = re.compile(r'"v(\d{1,18})"')


def etag_for(version: int) -> str:
    return f'"v{version}"'


def _listed_tags(header: str) -> list[str]:
    return [part.strip() for part in header.split(",") if part.strip()]


def check_if_match(if_match: str | None, current: str) -> None:
    """RFC 9110 §13.1.1 with strong comparison: weak tags never match; absent header passes."""
    if if_match is None:
        return
    tags = _listed_tags(if_match)
    if "*" in tags or current in tags:
        return
    raise EtagMismatch(current)


def accepted_versions(if_match: str | None) -> list[int] | None:
    """The versions an ``If-Match`` header accepts, for a service that checks them itself:
    None without the header or for ``*``; a tag that is not one of ours (weak, or not
    ``"v<n>"``) matches nothing."""
    if if_match is None:
        return None
    tags = _listed_tags(if_match)
    if "*" in tags:
        return None
    return [int(m[1]) for tag in tags if (m := _VERSION_TAG.fullmatch(tag))]


def none_match(if_none_match: str | None, current: str) -> bool:
    """True when a conditional GET can answer 304 (weak comparison, RFC 9110 §13.1.2)."""
    if not if_none_match:
        return False
    tags = [tag.removeprefix("W/") for tag in _listed_tags(if_none_match)]
    return "*" in tags or current in tags
