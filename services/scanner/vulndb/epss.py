"""Reading FIRST's EPSS score file. Pure.

The format (https://www.first.org/epss/data_stats), plain or gzip-compressed::

    #model_version:v2023.03.01,score_date:2023-03-17T00:00:00+0000
    cve,epss,percentile
    CVE-1999-0001,0.01015,0.82921

The score date of the comment line is the file's as-of date; it is required (a file
without it cannot say how current its scores are). A file with any malformed line is
refused as a whole with every bad line (the first 20) and its number: the file is machine
made, so a bad line means a damaged or truncated download, and half a day's scores next to
yesterday's would give a gate an inconsistent view. Duplicate CVEs are malformed lines too.
"""

from __future__ import annotations

import datetime as dt
import re
import zlib
from dataclasses import dataclass

from services.scanner.domain.errors import ScannerError

GZIP_MAGIC = b"\x1f\x8b"
# The full daily file is about 15 MB uncompressed (~270k CVEs); leave room for growth.
MAX_CSV_BYTES = 256 * 1024 * 1024
MAX_REPORTED_LINES = 20
HEADER = ("cve", "epss", "percentile")
_CVE = re.compile(r"CVE-\d{4}-\d{4,10}")


class EpssError(ScannerError):
    """A refused EPSS file; ``errors`` lists ``{line, message}`` for the bad lines."""

    code, status, title = "epss_malformed", 422, "Malformed EPSS file"

    def __init__(self, detail: str, *, line: int | None, errors: list[dict[str, object]]):
        extra: dict[str, object] = {"errors": errors}
        if line is not None:
            extra["location"] = f"line {line}"
        super().__init__(detail, extra=extra)
        self.line = line
        self.errors = errors


@dataclass(frozen=True, slots=True)
class EpssRow:
    cve: str
    score: float
    percentile: float


@dataclass(frozen=True, slots=True)
class EpssFile:
    as_of: dt.date
    model_version: str | None
    rows: tuple[EpssRow, ...]  # in file order
    compressed: bool


def _refuse(line: int, message: str) -> EpssError:
    return EpssError(
        f"line {line}: {message}", line=line, errors=[{"line": line, "message": message}]
    )


def decompress(data: bytes) -> bytes:
    """Inflate a gzip upload, refusing more than ``MAX_CSV_BYTES`` of output (a bomb)."""
    inflater = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
    try:
        out = inflater.decompress(data, MAX_CSV_BYTES + 1)
    except zlib.error as exc:
        raise EpssError(f"not a readable gzip file: {exc}", line=None, errors=[]) from None
    if len(out) > MAX_CSV_BYTES:
        raise EpssError(
            f"decompresses to more than {MAX_CSV_BYTES} bytes",
            line=None,
            errors=[],
        ) from None
    if not inflater.eof:
        raise EpssError("truncated gzip file", line=None, errors=[])
    return out


def parse_comment(text: str) -> tuple[dt.date, str | None]:
    """``#model_version:…,score_date:…`` → (score date, model version)."""
    fields: dict[str, str] = {}
    for part in text.lstrip("#").split(","):
        key, sep, value = part.partition(":")
        if sep:
            fields[key.strip().lower()] = value.strip()
    score_date = fields.get("score_date")
    if not score_date:
        raise ValueError("the comment line has no score_date")
    try:
        as_of = dt.date.fromisoformat(score_date[:10])
    except ValueError:
        raise ValueError(f"score_date {score_date!r} is not a date") from None
    return as_of, fields.get("model_version") or None


def _probability(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0.0 <= value <= 1.0 else None


def _row_problem(fields: list[str], seen: set[str]) -> str | EpssRow:
    if len(fields) != 3:
        return f"expected 3 fields (cve,epss,percentile), got {len(fields)}"
    cve, score_text, percentile_text = (f.strip() for f in fields)
    if not _CVE.fullmatch(cve):
        return f"{cve[:40]!r} is not a CVE id"
    if cve in seen:
        return f"{cve} appears twice"
    score = _probability(score_text)
    if score is None:
        return f"epss {score_text[:40]!r} is not a number between 0 and 1"
    percentile = _probability(percentile_text)
    if percentile is None:
        return f"percentile {percentile_text[:40]!r} is not a number between 0 and 1"
    return EpssRow(cve, score, percentile)


def read_epss(data: bytes) -> EpssFile:
    """The rows of an EPSS file (gzip detected by its magic bytes); ``EpssError`` if not."""
    compressed = data[:2] == GZIP_MAGIC
    if compressed:
        data = decompress(data)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        at_line = data[: exc.start].count(b"\n") + 1
        raise _refuse(at_line, "not UTF-8 text") from None
    lines = text.splitlines()
    if not lines or not lines[0].startswith("#"):
        raise _refuse(1, "expected the '#model_version:…,score_date:…' comment line")
    try:
        as_of, model_version = parse_comment(lines[0])
    except ValueError as exc:
        raise _refuse(1, str(exc)) from None
    if len(lines) < 2 or tuple(f.strip().lower() for f in lines[1].split(",")) != HEADER:
        raise _refuse(2, "expected the header 'cve,epss,percentile'")
    rows: list[EpssRow] = []
    seen: set[str] = set()
    errors: list[dict[str, object]] = []
    bad = 0
    for number, line in enumerate(lines[2:], start=3):
        if not line.strip():
            continue
        found = _row_problem(line.split(","), seen)
        if isinstance(found, EpssRow):
            seen.add(found.cve)
            rows.append(found)
            continue
        bad += 1
        if len(errors) < MAX_REPORTED_LINES:
            errors.append({"line": number, "message": found})
    if bad:
        first = errors[0]
        more = f" (+{bad - 1} more bad lines)" if bad > 1 else ""
        raise EpssError(
            f"line {first['line']}: {first['message']}{more}; the file is refused as a whole",
            line=int(str(first["line"])),
            errors=errors,
        )
    if not rows:
        raise _refuse(len(lines) + 1, "no scores after the header")
    return EpssFile(as_of, model_version, tuple(rows), compressed)


def epss_counts(
    scores: EpssFile, held: dict[str, tuple[float, float, dt.date]]
) -> tuple[int, int, int]:
    """(added, updated, unchanged): a score dated before the held one, or equal to it, is
    unchanged; the projection applies the same rule."""
    added = updated = unchanged = 0
    for row in scores.rows:
        old = held.get(row.cve)
        if old is None:
            added += 1
        elif old[2] > scores.as_of or old == (row.score, row.percentile, scores.as_of):
            unchanged += 1
        else:
            updated += 1
    return added, updated, unchanged
