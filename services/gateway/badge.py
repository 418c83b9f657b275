"""The trust badge: which of three states a caller may see, and the SVG of each (pure).

A repo's badge shows its decision only to callers allowed to know the repo exists: anybody
when every project listing the repo has ``badge: public`` (a repo shared with a private
project stays hidden), otherwise a key with a read role (scoped keys: of one of those
projects). Everyone else gets ``Unknown``, byte for byte the badge of a repo nobody knows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Literal

import jinja2

from services.gateway.dto import ProjectView
from services.gateway.routing import READ_ROLES, Principal

BadgeState = Literal["Assured", "Blocked", "Unknown"]
LABEL = "gatehouse"
# shields.io's colours: brightgreen, red, lightgrey.
_COLORS: dict[BadgeState, str] = {"Assured": "#4c1", "Blocked": "#e05d44", "Unknown": "#9f9f9f"}
# Verdana 11px is about 7 px per character on average; 10 px padding on each side.
_CHAR_PX = 7
_PADDING_PX = 10

_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).resolve().parent / "templates"),
    autoescape=True,
    keep_trailing_newline=True,
)


def may_see(principal: Principal | None, projects: Iterable[ProjectView]) -> bool:
    listing = list(projects)
    if not listing:
        return False
    if all(p.badge == "public" for p in listing):
        return True
    if principal is None or not principal.roles & READ_ROLES:
        return False
    return principal.project_id is None or principal.project_id in {p.id for p in listing}


class RenderedBadge:
    __slots__ = ("body", "etag")

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'


@cache
def render(state: BadgeState) -> RenderedBadge:
    """Three states, three fixed documents: each rendered once per process."""
    label_width = len(LABEL) * _CHAR_PX + 2 * _PADDING_PX
    message_width = len(state) * _CHAR_PX + 2 * _PADDING_PX
    svg = _TEMPLATES.get_template("badge.svg.j2").render(
        label=LABEL,
        message=state,
        color=_COLORS[state],
        width=label_width + message_width,
        label_width=label_width,
        message_width=message_width,
        label_x=label_width / 2,
        message_x=label_width + message_width / 2,
    )
    return RenderedBadge(svg.encode("utf-8"))
