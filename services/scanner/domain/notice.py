"""Third-party notices of a snapshot (``notice?format=text|markdown|html``).

Components are grouped by their normalised license expression (``licenses.normalize``), and
groups are ordered by expression (case-insensitive) with the components that declare no
license last; within a group, components are ordered by name, version and purl. Each known
SPDX license and exception in a group's expression links to its page on spdx.org. The
snapshot's own subject is not a third party and is left to the caller to omit.

Templates are jinja2 (``templates/notice.*.j2``). HTML is autoescaped; Markdown values go
through an escaping filter (so a component named ``*x* | <b>`` stays text); plain text
only loses control characters. Output depends on nothing but the arguments.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Literal

import jinja2
import msgspec

from .licenses import Leaf, Node, license_tree, normalize
from .model import Component

NoticeFormat = Literal["text", "markdown", "html"]
NO_LICENSE = "No license declared"
_TEMPLATES = {"text": "notice.txt.j2", "markdown": "notice.md.j2", "html": "notice.html.j2"}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Enough to keep names literal inline and in table cells: emphasis, code, links, pipes,
# strikethrough and headings; HTML is neutralised with entities.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|~#])")


class NoticeComponent(msgspec.Struct, frozen=True):
    name: str
    version: str
    purl: str


class LicenseLink(msgspec.Struct, frozen=True):
    id: str
    url: str


class NoticeGroup(msgspec.Struct, frozen=True):
    title: str
    links: list[LicenseLink]
    components: list[NoticeComponent]


def _clean(text: str | None) -> str:
    return _CONTROL.sub("", text or "").strip()


def _markdown(value: object) -> str:
    text = _clean(str(value)).replace("\n", " ")
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def _code(value: object) -> str:
    # Inside a code span nothing is interpreted but backticks and the table's pipes.
    return _clean(str(value)).replace("`", "'").replace("|", "%7C")


def _links(node: Node | None) -> list[LicenseLink]:
    if node is None:
        return []
    leaves: list[Leaf] = []
    stack: list[Node] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, Leaf):
            leaves.append(current)
        else:
            stack.extend(current.children)
    ids: dict[str, None] = {}
    for leaf in leaves:
        if leaf.known:
            ids[leaf.key] = None
            if leaf.exception:
                ids[leaf.exception] = None
    return [
        LicenseLink(identifier, f"https://spdx.org/licenses/{identifier}.html")
        for identifier in sorted(ids, key=str.casefold)
    ]


def notice_groups(components: Iterable[Component]) -> list[NoticeGroup]:
    grouped: dict[str, tuple[Node | None, list[NoticeComponent]]] = {}
    for component in components:
        tree = license_tree(component.licenses)
        title = _clean(normalize(component.licenses).expression) or NO_LICENSE
        entry = grouped.setdefault(title, (tree, []))
        item = NoticeComponent(
            _clean(component.name), _clean(component.version), _clean(component.purl)
        )
        if item not in entry[1]:
            entry[1].append(item)
    order = sorted(grouped, key=lambda t: (t == NO_LICENSE, t.casefold(), t))
    return [
        NoticeGroup(
            title=title,
            links=_links(grouped[title][0]),
            components=sorted(
                grouped[title][1], key=lambda c: (c.name.casefold(), c.version, c.purl)
            ),
        )
        for title in order
    ]


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).resolve().parent / "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
    )
    environment.filters["md"] = _markdown
    environment.filters["code"] = _code
    return environment


def render_notice(
    components: Iterable[Component],
    *,
    format: NoticeFormat,
    title: str,
    generated_at: str | None = None,
) -> str:
    """The notice document. ``generated_at`` is shown as given (pass it for a dated notice;
    leave it out for output that only changes when the components do)."""
    groups = notice_groups(components)
    template = _environment().get_template(_TEMPLATES[format])
    return template.render(
        title=_clean(title),
        generated_at=generated_at,
        groups=groups,
        component_count=sum(len(g.components) for g in groups),
    )
