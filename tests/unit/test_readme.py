"""The top-level README says what the code does: its settings table is the Settings struct,
its commands are the CLI's, its make targets exist and its links lead somewhere. (Its curl
examples run against a real `gatehouse up` in tests/e2e/test_stack_up.py.)"""

from __future__ import annotations

import re
from typing import Any

from services.cli import build_parser
from shared.settings import documented_settings
from tests.conftest import ROOT

README = ROOT / "README.md"
CELL_SPLIT = re.compile(r"(?<!\\)\|")


def _settings_rows() -> list[list[str]]:
    text = README.read_text()
    table = text.split("<!-- settings:begin -->", 1)[1].split("<!-- settings:end -->", 1)[0]
    lines = [line.strip() for line in table.strip().splitlines()]
    assert lines[1].startswith("|---"), "a header row, then the separator"
    return [[c.strip() for c in CELL_SPLIT.split(line.strip("|"))] for line in lines[2:]]


def _code(text: str) -> str:
    return "`" + text.replace("|", "\\|") + "`"


def _default_cell(default: Any) -> str:
    return _code('""' if default == "" else str(default))


def expected_row(variable: str, type_name: str, default: Any) -> list[str]:
    return [_code(variable), _code(type_name), _default_cell(default)]


def test_the_settings_table_is_the_settings_struct() -> None:
    expected = [expected_row(*setting) for setting in documented_settings()]
    actual = [row[:3] for row in _settings_rows()]
    missing = [" | ".join(r) for r in expected if r not in actual]
    stale = [" | ".join(r) for r in actual if r not in expected]
    assert not missing and not stale, (
        "README.md's settings table disagrees with shared/settings.py.\n"
        "Rows to add or fix (variable | type | default, then a meaning):\n  "
        + "\n  ".join(missing)
        + "\nRows to remove or fix:\n  "
        + "\n  ".join(stale)
    )
    assert actual == expected, "the table lists the settings in the struct's order"


def test_every_setting_says_what_it_means() -> None:
    for row in _settings_rows():
        assert len(row) == 4 and row[3], f"{row[0]} has no meaning column"


def test_every_command_is_documented() -> None:
    text = README.read_text()
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    for name in subparsers.choices:
        assert f"gatehouse {name}" in text, name


def test_make_targets_named_in_the_readme_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][\w-]*):", makefile, re.M))
    for target in set(re.findall(r"\bmake ([a-z][\w-]*)", README.read_text())):
        assert target in targets, f"make {target}"


def test_relative_links_lead_to_files() -> None:
    for target in re.findall(r"\]\(([^)#:]+)\)", README.read_text()):
        assert (ROOT / target).exists(), target


def test_every_subscribable_event_is_in_the_catalog_or_announced() -> None:
    """The README's "Events you can subscribe to" names events a subscription accepts: the
    registered catalog, or the artifact events the fan-out already accepts."""
    from contracts.envelope import registry
    from services.webhook_fanout.domain.matching import UPCOMING_EVENT_TYPES

    text = (ROOT / "README.md").read_text()
    table = text.split("<!-- subscribable:start -->", 1)[1].split("<!-- subscribable:end -->")[0]
    named = set(re.findall(r"`([a-z][a-z-]*\.[a-z][a-z-]*)`", table))
    catalog = {event_type for event_type, _ in registry()}
    assert len(named) >= 19
    assert named <= catalog | UPCOMING_EVENT_TYPES, named - catalog - UPCOMING_EVENT_TYPES
