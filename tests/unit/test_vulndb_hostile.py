"""Hostile OSV advisories are rejected alone with their id (when it can be read), file and
JSON path, never planned for a write the database would then refuse (issue 9, §2)."""

from __future__ import annotations

from typing import Any

import pytest

from services.scanner.domain.limits import MAX_IDENTIFIER_BYTES
from services.scanner.vulndb.bundle import plan_import, read_bundle
from shared.storable import find_unstorable
from tests.unit.test_vulndb_domain import osv, zip_of


def _deep(levels: int) -> Any:
    value: Any = "leaf"
    for _ in range(levels):
        value = {"x": value}
    return value


@pytest.mark.parametrize(
    ("extra", "location"),
    [
        ({"summary": "a\u0000b"}, "$.summary"),
        ({"details": "\u0000"}, "$.details"),
        ({"aliases": ["CVE-2024-1", "CVE\u0000"]}, "$.aliases[1]"),
        ({"database_specific": {"k": ["ok", "\u0000"]}}, "$.database_specific.k[1]"),
        ({"database_specific": {"a\u0000": 1}}, "$.database_specific['a\\x00']"),
        ({"published": "0001-01-01T00:00:00+14:00"}, "$.published"),
        ({"published": "9999-12-31T23:59:59-14:00"}, "$.published"),
        ({"database_specific": _deep(100)}, "$.database_specific" + ".x" * 63),
        ({"aliases": ["A" * (MAX_IDENTIFIER_BYTES + 1)]}, "$.aliases[0]"),
    ],
)
def test_an_advisory_the_database_could_not_hold_is_rejected_with_its_path(
    extra: dict[str, Any], location: str
) -> None:
    bundle = read_bundle(zip_of({"PyPI/bad.json": osv("BAD", **extra), "PyPI/ok.json": osv("OK")}))
    plan = plan_import(bundle, {})
    assert [e.advisory.id for e in plan.changes] == ["OK"]
    [record] = plan.rejected
    assert (record.id, record.file, record.code) == ("BAD", "PyPI/bad.json", "osv_malformed")
    assert record.location == location
    assert find_unstorable(plan.rejected) is None  # the record is itself publishable


@pytest.mark.parametrize(
    "head",
    [
        {"modified": "0001-01-01T00:00:00+14:00"},
        {"modified": "9999-12-31T23:59:59-14:00"},
        {"id": "BAD\u0000"},
        {"id": "B" * (MAX_IDENTIFIER_BYTES + 1)},
    ],
)
def test_an_unstorable_id_or_modified_is_rejected_before_planning(head: dict[str, Any]) -> None:
    doc = osv("BAD") | head
    bundle = read_bundle(zip_of({"bad.json": doc, "ok.json": osv("OK")}))
    plan = plan_import(bundle, {})
    assert [e.advisory.id for e in plan.changes] == ["OK"]
    [record] = plan.rejected
    assert record.code == "osv_malformed"
    assert record.location in ("$.id", "$.modified")
    assert find_unstorable(plan.rejected) is None


def test_json_nested_past_the_decoder_is_rejected_not_a_crash() -> None:
    raw = (
        b'{"id": "DEEP", "modified": "2024-01-01T00:00:00Z", "x": '
        + b"[" * 5000
        + b"]" * 5000
        + b"}"
    )
    plan = plan_import(read_bundle(zip_of({"deep.json": raw, "ok.json": osv("OK")})), {})
    assert [e.advisory.id for e in plan.changes] == ["OK"]
    assert [(r.file, r.code, r.location) for r in plan.rejected] == [
        ("deep.json", "osv_malformed", "$")
    ]
