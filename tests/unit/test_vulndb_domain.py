"""The vulnerability database's pure parts: reading OSV bundles and planning imports, EPSS
files, derived rows and alias groups."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import zipfile
from typing import Any

import msgspec
import pytest

from services.scanner.domain.advisory_index import AdvisoryIndex
from services.scanner.domain.errors import ArchiveError
from services.scanner.vulndb import epss
from services.scanner.vulndb.bundle import (
    MAX_ADVISORY_BYTES,
    Held,
    NoAdvisories,
    plan_import,
    read_bundle,
)
from services.scanner.vulndb.epss import EpssError, epss_counts, read_epss
from services.scanner.vulndb.rows import advisory_row, alias_groups

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def osv(
    advisory_id: str,
    *,
    modified: dt.datetime = T0,
    ecosystem: str = "PyPI",
    name: str = "demo",
    aliases: tuple[str, ...] = (),
    events: list[dict[str, str]] | None = None,
    withdrawn: dt.datetime | None = None,
    **extra: Any,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": advisory_id,
        "modified": modified.isoformat(),
        "aliases": list(aliases),
        "affected": [
            {
                "package": {"ecosystem": ecosystem, "name": name},
                "ranges": [
                    {
                        "type": "ECOSYSTEM",
                        "events": events or [{"introduced": "0"}, {"fixed": "1.2.0"}],
                    }
                ],
            }
        ],
        **extra,
    }
    if withdrawn is not None:
        doc["withdrawn"] = withdrawn.isoformat()
    return doc


def zip_of(files: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as out:
        for path, content in files.items():
            data = content if isinstance(content, bytes) else msgspec.json.encode(content)
            out.writestr(path, data)
    return buffer.getvalue()


def test_a_bundle_reads_advisories_and_records_the_broken_ones() -> None:
    bundle = read_bundle(
        zip_of(
            {
                "PyPI/B.json": osv("B"),
                "PyPI/A.json": osv("A", aliases=("CVE-2024-1",)),
                "PyPI/broken.json": osv(
                    "BROKEN", events=[{"introduced": "0", "fixed": "1.0", "last_affected": "2"}]
                ),
                "PyPI/not-json.json": b"{nope",
                "PyPI/no-id.json": {"modified": T0.isoformat()},
                "README.md": b"# not an advisory",
                "dir/": b"",
            }
        )
    )
    assert [f.id for f in bundle.files] == ["A", "B", "BROKEN"]  # path order
    assert bundle.skipped_files == 1
    plan = plan_import(bundle, {})
    assert [e.advisory.id for e in plan.changes] == ["A", "B"]
    rejected = [(r.id, r.file, r.location, r.code) for r in plan.rejected]
    assert rejected == [
        (None, "PyPI/no-id.json", "$", "osv_malformed"),
        (None, "PyPI/not-json.json", "$", "osv_malformed"),
        ("BROKEN", "PyPI/broken.json", "$.affected[0].ranges[0].events[0]", "osv_broken_ranges"),
    ]
    assert plan.counts_by_ecosystem["PyPI"].rejected == 1
    assert plan.counts_by_ecosystem["unknown"].rejected == 2
    assert "id" in plan.rejected[0].message


def test_a_file_malformed_beyond_its_head_is_refused_with_the_path() -> None:
    doc = osv("X", ecosystem="Go", name="m", events=[{"introduced": "0"}])
    doc["severity"] = "high"
    bundle = read_bundle(zip_of({"x.json": doc}))
    assert [(f.id, f.ecosystems) for f in bundle.files] == [("X", ("Go",))]
    plan = plan_import(bundle, {})
    assert [(r.id, r.location, r.code) for r in plan.rejected] == [
        ("X", "$.severity", "osv_malformed")
    ]
    assert plan.counts_by_ecosystem["Go"].rejected == 1
    assert plan_import(bundle, {"X": Held(T0, False)}).counts.unchanged == 1


def test_a_broken_copy_the_database_already_holds_is_not_checked_again() -> None:
    bundle = read_bundle(zip_of({"x.json": osv("X", events=[{"fixed": "1"}])}))
    assert plan_import(bundle, {"X": Held(T0, False)}).counts.unchanged == 1
    assert plan_import(bundle, {}).counts.rejected == 1


def test_the_newest_copy_of_an_id_wins() -> None:
    later = T0 + dt.timedelta(days=1)
    bundle = read_bundle(
        zip_of({"a/X.json": osv("X"), "b/X.json": osv("X", modified=later), "c/X.json": osv("X")})
    )
    plan = plan_import(bundle, {})
    assert [(e.path, e.advisory.modified) for e in plan.changes] == [("b/X.json", later)]
    assert (plan.counts.added, plan.counts.unchanged) == (1, 2)
    # A broken newest copy does not hide a valid older one.
    bundle = read_bundle(
        zip_of(
            {"a/X.json": osv("X"), "b/X.json": osv("X", modified=later, events=[{"fixed": "1"}])}
        )
    )
    plan = plan_import(bundle, {})
    assert [e.path for e in plan.changes] == ["a/X.json"] and plan.counts.rejected == 1


def test_oversized_advisories_are_rejected_alone() -> None:
    big = osv("BIG", details="x" * MAX_ADVISORY_BYTES)
    bundle = read_bundle(zip_of({"BIG.json": big, "OK.json": osv("OK")}))
    assert [f.id for f in bundle.files] == ["OK"]
    assert bundle.rejected[0].record.code == "osv_too_large"


@pytest.mark.parametrize(
    ("files", "code"),
    [
        ({"../evil.json": osv("E")}, "archive_path_traversal"),
        ({"bomb.json": b"\0" * (3 << 20)}, "archive_bomb"),
    ],
)
def test_unsafe_archives_are_refused_whole(files: dict[str, Any], code: str) -> None:
    with pytest.raises(ArchiveError) as caught:
        read_bundle(zip_of({"ok.json": osv("OK"), **files}))
    assert caught.value.code == code


def test_not_a_zip_or_no_advisories() -> None:
    with pytest.raises(ArchiveError) as caught:
        read_bundle(b"plain text")
    assert caught.value.code == "archive_invalid"
    with pytest.raises(NoAdvisories):
        read_bundle(zip_of({"README.md": b"hi"}))


def test_plan_is_incremental_by_modified_and_counts_per_ecosystem() -> None:
    later = T0 + dt.timedelta(days=1)
    bundle = read_bundle(
        zip_of(
            {
                "new.json": osv(
                    "NEW",
                    ecosystem="Go",
                    name="example.com/m",
                    events=[{"introduced": "0"}, {"fixed": "1.0.0"}],
                ),
                "same.json": osv("SAME"),
                "older.json": osv("OLDER"),
                "newer.json": osv("NEWER", modified=later),
                "gone.json": osv("GONE", modified=later, withdrawn=later),
                "again.json": osv("AGAIN", modified=later, withdrawn=later),
                "bad.json": osv("BAD", events=[{"fixed": "1"}]),
            }
        )
    )
    held = {
        "SAME": Held(T0, False),
        "OLDER": Held(later, False),
        "NEWER": Held(T0, False),
        "GONE": Held(T0, False),
        "AGAIN": Held(T0, True),
    }
    plan = plan_import(bundle, held)
    assert plan.outcomes == {
        "AGAIN": "updated",  # withdrawn before, still withdrawn: a new copy, not a withdrawal
        "GONE": "withdrawn",
        "NEW": "added",
        "NEWER": "updated",
    }
    assert [e.advisory.id for e in plan.changes] == ["AGAIN", "GONE", "NEW", "NEWER"]
    c = plan.counts
    assert (c.added, c.updated, c.withdrawn, c.unchanged, c.rejected) == (1, 2, 1, 2, 1)
    assert plan.counts_by_ecosystem["Go"].added == 1
    assert plan.counts_by_ecosystem["PyPI"].rejected == 1
    assert plan.rejected[0].id == "BAD"


def test_rows_derive_severity_packages_and_aliases() -> None:
    doc = osv(
        "PYSEC-1",
        name="Django_Rest",
        aliases=("CVE-2024-5", "PYSEC-1", "GHSA-x"),
        severity=[{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
        summary="s" * 2000,
    )
    entry = plan_import(read_bundle(zip_of({"a.json": doc})), {}).changes[0]
    row = advisory_row(entry)
    assert (row.severity, row.cvss_score, row.severity_source) == ("CRITICAL", 9.8, "CVSS_V3")
    assert row.packages == (("PyPI", "django-rest"),)
    assert row.aliases == ("CVE-2024-5", "GHSA-x")  # itself left out
    assert row.summary is not None and len(row.summary) == 1000
    assert row.document == msgspec.json.encode(doc)


def test_alias_groups_agree_with_the_matcher() -> None:
    docs = [
        osv("GHSA-1", aliases=("CVE-2024-9", "PYSEC-1")),
        osv("PYSEC-1", aliases=("CVE-2024-10",)),
        osv("GO-1", ecosystem="Go", name="m", aliases=(), events=[{"introduced": "0"}]),
        osv("GHSA-2", aliases=("GHSA-3",)),
    ]
    bundle = read_bundle(zip_of({f"{d['id']}.json": d for d in docs}))
    entries = plan_import(bundle, {}).changes
    rows = [advisory_row(e) for e in entries]
    groups = alias_groups(
        [r.id for r in rows], [(r.id, alias) for r in rows for alias in r.aliases]
    )
    index = AdvisoryIndex()
    index.upsert_many(e.advisory for e in entries)
    for member, group in groups.items():
        assert index.group_of(member) == group, member
    assert groups["PYSEC-1"] == "CVE-2024-9" and groups["GO-1"] == "GO-1"
    assert groups["GHSA-3"] == "GHSA-2"


EPSS = (
    "#model_version:v2023.03.01,score_date:2024-05-02T00:00:00+0000\n"
    "cve,epss,percentile\n"
    "CVE-2024-1000,0.97000,0.99900\n"
    "CVE-2024-2000,0.00100,0.12000\n"
)


def test_epss_plain_and_gzip() -> None:
    plain = read_epss(EPSS.encode())
    assert plain.as_of == dt.date(2024, 5, 2) and plain.model_version == "v2023.03.01"
    assert [(r.cve, r.score, r.percentile) for r in plain.rows] == [
        ("CVE-2024-1000", 0.97, 0.999),
        ("CVE-2024-2000", 0.001, 0.12),
    ]
    assert not plain.compressed
    packed = read_epss(gzip.compress(EPSS.encode()))
    assert packed.rows == plain.rows and packed.compressed


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("cve,epss,percentile\nCVE-2024-1,0.1,0.2\n", 1, "comment line"),
        ("#model_version:v1\ncve,epss,percentile\n", 1, "score_date"),
        ("#score_date:yesterday\ncve,epss,percentile\n", 1, "not a date"),
        ("#score_date:2024-01-01\ncve,score\n", 2, "header"),
        ("#score_date:2024-01-01\ncve,epss,percentile\n", 3, "no scores"),
        ("#score_date:2024-01-01\ncve,epss,percentile\nCVE-2024-1234,0.1\n", 3, "3 fields"),
        ("#score_date:2024-01-01\ncve,epss,percentile\nCVE-X,0.1,0.1\n", 3, "not a CVE"),
        ("#score_date:2024-01-01\ncve,epss,percentile\nCVE-2024-1234,1.5,0.1\n", 3, "epss"),
        ("#score_date:2024-01-01\ncve,epss,percentile\nCVE-2024-1234,0.1,abc\n", 3, "percentile"),
    ],
)
def test_malformed_epss_files_are_refused_with_the_line(
    text: str, line: int, fragment: str
) -> None:
    with pytest.raises(EpssError) as caught:
        read_epss(text.encode())
    assert caught.value.line == line and fragment in str(caught.value.detail)
    assert caught.value.extra["location"] == f"line {line}"


def test_every_bad_line_is_named_and_the_file_refused_whole() -> None:
    rows = "".join(f"CVE-2024-{3000 + i},0.1,0.5\n" for i in range(30))
    text = EPSS + rows + "CVE-2024-1000,0.2,0.2\n" + "garbage\n" * 25
    with pytest.raises(EpssError) as caught:
        read_epss(text.encode())
    errors = caught.value.errors
    assert errors[0] == {"line": 35, "message": "CVE-2024-1000 appears twice"}
    assert len(errors) == 20 and "(+25 more bad lines)" in caught.value.detail


def test_gzip_bombs_and_broken_gzip_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(EpssError, match="not a readable gzip"):
        read_epss(b"\x1f\x8b" + b"junk")
    with pytest.raises(EpssError, match="truncated"):
        read_epss(gzip.compress(EPSS.encode())[:-12])
    monkeypatch.setattr(epss, "MAX_CSV_BYTES", 1 << 20)
    bomb = gzip.compress(b"#score_date:2024-01-01\n" + b"0" * (2 << 20), compresslevel=9)
    with pytest.raises(EpssError, match="decompresses to more than"):
        read_epss(bomb)


def test_epss_counts_follow_the_date_rule() -> None:
    scores = read_epss(EPSS.encode())
    same = (0.97, 0.999, dt.date(2024, 5, 2))
    assert epss_counts(scores, {}) == (2, 0, 0)
    assert epss_counts(scores, {"CVE-2024-1000": same}) == (1, 0, 1)
    newer = (0.5, 0.5, dt.date(2024, 6, 1))
    older = (0.5, 0.5, dt.date(2024, 4, 1))
    assert epss_counts(scores, {"CVE-2024-1000": newer, "CVE-2024-2000": older}) == (0, 1, 1)


def test_overlapping_gc_pauses_end_with_the_last() -> None:
    import gc

    from services.scanner.vulndb.offload import gc_paused

    assert gc.isenabled()
    with gc_paused:
        with gc_paused:
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_the_packed_epss_table() -> None:
    from services.scanner.vulndb.epss_table import EpssRows, EpssTable, cve_key

    def rows(*items: tuple[str, float, float]) -> EpssRows:
        packed = EpssRows()
        for item in items:
            packed.append(*item)
        return packed

    assert cve_key("CVE-2024-1234") == 2024 * 10**10 + 1234
    assert cve_key("GHSA-xxxx") is None and cve_key("CVE-2024-12") is None
    table = EpssTable().merged(rows(("CVE-1999-0001", 0.01, 0.1), ("CVE-2024-1234", 0.5, 0.9)))
    newer = table.merged(rows(("CVE-2023-44487", 0.8, 0.99), ("CVE-2024-1234", 0.7, 0.95)))
    assert len(table) == 2 and len(newer) == 3
    assert table.get("CVE-2024-1234") == (0.5, 0.9)  # a table never changes once built
    assert newer.get_many(["CVE-2024-1234", "CVE-1999-0001", "CVE-2020-0001", "GHSA-1"]) == {
        "CVE-2024-1234": (0.7, 0.95),
        "CVE-1999-0001": (0.01, 0.1),
    }
    assert newer.get("CVE-2023-44487") == (0.8, 0.99)
    with pytest.raises(ValueError, match="out of order"):
        rows(("CVE-2024-1234", 0.1, 0.1), ("CVE-2023-0001", 0.1, 0.1))


def test_merging_epss_tables_is_a_dict_update() -> None:
    import random

    from services.scanner.vulndb.epss_table import EpssRows, EpssTable, cve_key

    rng = random.Random(7)
    expected: dict[str, tuple[float, float]] = {}
    table = EpssTable()
    for _ in range(5):
        batch = {
            f"CVE-{rng.randint(2000, 2003)}-{rng.randint(1000, 1200)}": (rng.random(), 0.5)
            for _ in range(150)
        }
        packed = EpssRows()
        for cve in sorted(batch, key=lambda c: cve_key(c) or 0):
            packed.append(cve, *batch[cve])
        table = table.merged(packed)
        expected.update(batch)
    assert len(table) == len(expected)
    assert table.get_many(expected) == expected
