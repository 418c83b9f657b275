"""Third-party notices: grouped by license, deterministic, escaped for each format."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from hypothesis import given
from hypothesis import strategies as st

from services.scanner.domain.model import Component, License
from services.scanner.domain.notice import NO_LICENSE, notice_groups, render_notice

EVIL = '*evil* | <script>alert("x")</script> [link](http://x) `tick` & \x07'
COMPONENTS = [
    Component(
        ref="d",
        name="Django",
        version="3.2",
        purl="pkg:pypi/django@3.2",
        licenses=(License(id="BSD-3-Clause"),),
    ),
    Component(ref="n", name="nolicense", version="0.1"),
    Component(
        ref="e", name=EVIL, version="1.0", licenses=(License(expression="mit OR Apache-2.0"),)
    ),
    Component(ref="a", name="attrs", version="23.1", licenses=(License(id="MIT"),)),
    Component(ref="b", name="apache-thing", version="1", licenses=(License(id="Apache-2.0"),)),
    Component(
        ref="j",
        name="jdk",
        version="17",
        licenses=(License(expression="GPL-2.0-only WITH Classpath-exception-2.0"),),
    ),
    Component(ref="u", name="odd", licenses=(License(name="Acme Proprietary"),)),
    # The same package twice (two refs) is listed once.
    Component(ref="a2", name="attrs", version="23.1", licenses=(License(id="MIT"),)),
]


def test_groups_are_ordered_and_link_known_licenses() -> None:
    groups = notice_groups(COMPONENTS)
    assert [g.title for g in groups] == [
        "Acme Proprietary",
        "Apache-2.0",
        "BSD-3-Clause",
        "GPL-2.0-only WITH Classpath-exception-2.0",
        "MIT",
        "MIT OR Apache-2.0",
        NO_LICENSE,
    ]
    by_title = {g.title: g for g in groups}
    assert [c.name for c in by_title["MIT"].components] == ["attrs"]
    assert [link.id for link in by_title["GPL-2.0-only WITH Classpath-exception-2.0"].links] == [
        "Classpath-exception-2.0",
        "GPL-2.0-only",
    ]
    assert by_title["Acme Proprietary"].links == []
    assert by_title["MIT OR Apache-2.0"].components[0].name == EVIL.replace("\x07", "").strip()


def test_every_format_is_deterministic_and_order_independent() -> None:
    for format in ("text", "markdown", "html"):
        first = render_notice(COMPONENTS, format=format, title="shop")
        again = render_notice(list(reversed(COMPONENTS)), format=format, title="shop")
        assert first == again
        assert "\x07" not in first
        assert "8 components" not in first and "7 components, 7 license groups" in first


def test_html_is_escaped_and_well_formed() -> None:
    html = render_notice(COMPONENTS, format="html", title="<b>shop</b>", generated_at="today")
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "&lt;b&gt;shop&lt;/b&gt;" in html
    # Well-formed apart from the doctype: every tag closes.
    ET.fromstring(html.split("\n", 1)[1].replace("&middot;", "·"))
    assert 'href="https://spdx.org/licenses/BSD-3-Clause.html"' in html


def test_markdown_keeps_names_literal() -> None:
    markdown = render_notice(COMPONENTS, format="markdown", title="shop")
    row = next(line for line in markdown.splitlines() if "evil" in line)
    assert row.startswith("| \\*evil\\* \\| &lt;script&gt;")
    assert "\\[link\\](http://x)" in row and "\\`tick\\`" in row and "&amp;" in row
    # Exactly the table's own pipes are unescaped: 4 per row.
    assert len(re.findall(r"(?<!\\)\|", row)) == 4
    assert "- [BSD-3-Clause](https://spdx.org/licenses/BSD-3-Clause.html)" in markdown


def test_text_lists_purls_and_versions() -> None:
    text = render_notice(COMPONENTS, format="text", title="shop", generated_at="2026-03-01")
    assert "Generated 2026-03-01" in text
    assert "  - Django 3.2 (pkg:pypi/django@3.2)" in text
    assert text.index("Acme Proprietary") < text.index(NO_LICENSE)


NAMES = st.text(st.characters(min_codepoint=0, max_codepoint=0x2FFF), max_size=30)


@given(st.lists(NAMES, max_size=6), NAMES)
def test_any_names_render_in_every_format(names: list[str], title: str) -> None:
    components = [
        Component(ref=str(i), name=name, version=name[:5] or None, licenses=(License(name=name),))
        for i, name in enumerate(names)
    ]
    for format in ("text", "markdown"):
        render_notice(components, format=format, title=title)
    html = render_notice(components, format="html", title=title)
    # Whatever the names, the HTML stays well-formed: nothing they contain became markup.
    root = ET.fromstring(html.split("\n", 1)[1])
    rows = sum(len(group.components) for group in notice_groups(components))
    assert len(root.findall(".//tbody/tr")) == rows
