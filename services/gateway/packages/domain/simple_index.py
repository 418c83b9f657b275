"""The simple repository API: PEP 503 HTML and PEP 691 JSON (API version 1.1: PEP 700's
``versions``, ``size`` and ``upload-time``), chosen by content negotiation.

Links are relative to the page (``../../files/<sha256>/<file>``), so the index is right
behind any proxy or public URL; PEP 691 and pip resolve them against the page's URL.
A file with core metadata stored beside it says so both ways: ``data-core-metadata``
(PEP 714) and ``data-dist-info-metadata`` (PEP 658, for pips before 23.2).
"""

from __future__ import annotations

import datetime as dt
import html
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec
from packaging.version import InvalidVersion, Version

from services.gateway.packages.domain.errors import InvalidDistribution, NotAcceptable
from services.gateway.packages.domain.filenames import parse_dist_filename

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"
_ALIASES = {
    "application/vnd.pypi.simple.latest+json": JSON_V1,
    "application/vnd.pypi.simple.latest+html": HTML_V1,
}
# Server preference among media types the client accepts equally (JSON is cheaper to parse).
_OFFERS = (JSON_V1, HTML_V1, TEXT_HTML)
API_VERSION = "1.1"
_MAX_ACCEPT_ENTRIES = 50


@dataclass(frozen=True, kw_only=True)
class IndexedFile:
    filename: str
    sha256: str  # hex
    size: int
    requires_python: str | None
    metadata_sha256: str | None  # hex of the PEP 658 metadata file, None: none stored
    uploaded_at: dt.datetime


def negotiate(accept: str | None) -> str:
    """The media type to answer ``Accept`` with; 406 when none of ours is acceptable.

    No header, or only wildcards: ``text/html`` (what every client understands, browsers
    and curl included). Otherwise the highest ``q``, ties going to the media type the
    client named explicitly, then to JSON."""
    if not accept or not accept.strip():
        return TEXT_HTML
    ranges = _parse_accept(accept)
    best: tuple[float, int, int] | None = None
    chosen = None
    for preference, offer in enumerate(_OFFERS):
        match = _quality(offer, ranges)
        if match is None or match[0] <= 0:
            continue
        quality, specificity = match
        # Wildcard-only matches prefer text/html (browsers, curl: "*/*").
        rank = preference if specificity == 2 else (0 if offer == TEXT_HTML else 3 + preference)
        key = (quality, specificity, -rank)
        if best is None or key > best:
            best, chosen = key, offer
    if chosen is None:
        raise NotAcceptable(
            f"the simple index is served as {', '.join(_OFFERS)}; Accept: {accept[:200]!r}",
            extra={"available": list(_OFFERS)},
        )
    return chosen


def _parse_accept(accept: str) -> list[tuple[str, float]]:
    ranges: list[tuple[str, float]] = []
    for entry in accept.split(",")[:_MAX_ACCEPT_ENTRIES]:
        media, *params = (part.strip() for part in entry.split(";"))
        media = media.lower()
        if not media:
            continue
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = min(max(float(value.strip()), 0.0), 1.0)
                except ValueError:
                    quality = 0.0
        ranges.append((_ALIASES.get(media, media), quality))
    return ranges


def _quality(offer: str, ranges: list[tuple[str, float]]) -> tuple[float, int] | None:
    """(q, specificity) of the most specific range matching ``offer`` (2 exact, 1 type/*,
    0 */*), or None."""
    kind = offer.split("/", 1)[0]
    found: tuple[float, int] | None = None
    for media, quality in ranges:
        specificity = 2 if media == offer else 1 if media == f"{kind}/*" else 0
        if specificity == 0 and media != "*/*":
            continue
        if found is None or specificity > found[1]:
            found = (quality, specificity)
    return found


def is_json(media_type: str) -> bool:
    return media_type == JSON_V1


def file_url(file: IndexedFile) -> str:
    """The file's download URL, relative to a project page (``…/simple/<name>/``)."""
    return f"../../files/{file.sha256}/{urllib.parse.quote(file.filename)}"


def project_list(names: Iterable[str], media_type: str) -> bytes:
    names = sorted(set(names))
    if is_json(media_type):
        return _json(
            {"meta": {"api-version": API_VERSION}, "projects": [{"name": n} for n in names]}
        )
    links = "".join(
        f'<a href="{html.escape(urllib.parse.quote(n))}/">{html.escape(n)}</a><br/>\n'
        for n in names
    )
    return _page("Simple index", links)


def project_page(name: str, files: Iterable[IndexedFile], media_type: str) -> bytes:
    files = sorted(files, key=lambda f: f.filename)
    if is_json(media_type):
        return _json(
            {
                "meta": {"api-version": API_VERSION},
                "name": name,
                "versions": versions_of(f.filename for f in files),
                "files": [_json_file(f) for f in files],
            }
        )
    return _page(f"Links for {name}", "".join(_html_link(f) for f in files))


def versions_of(filenames: Iterable[str]) -> list[str]:
    """PEP 700's ``versions``: every version the files name, in PEP 440 order."""
    found: dict[str, Version] = {}
    for filename in filenames:
        try:
            version = parse_dist_filename(filename).version
            found.setdefault(version, Version(version))
        except (InvalidDistribution, InvalidVersion):
            continue
    return sorted(found, key=lambda v: found[v])


def _json_file(file: IndexedFile) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "filename": file.filename,
        "url": file_url(file),
        "hashes": {"sha256": file.sha256},
        "size": file.size,
        "upload-time": _upload_time(file.uploaded_at),
        "yanked": False,
    }
    if file.requires_python is not None:
        entry["requires-python"] = file.requires_python
    metadata: Any = {"sha256": file.metadata_sha256} if file.metadata_sha256 else False
    entry["core-metadata"] = metadata
    entry["dist-info-metadata"] = metadata
    return entry


def _html_link(file: IndexedFile) -> str:
    attributes = [f'href="{html.escape(file_url(file))}#sha256={file.sha256}"']
    if file.requires_python is not None:
        attributes.append(f'data-requires-python="{html.escape(file.requires_python)}"')
    if file.metadata_sha256:
        attributes.append(f'data-dist-info-metadata="sha256={file.metadata_sha256}"')
        attributes.append(f'data-core-metadata="sha256={file.metadata_sha256}"')
    return f"<a {' '.join(attributes)}>{html.escape(file.filename)}</a><br/>\n"


def _upload_time(at: dt.datetime) -> str:
    """PEP 700: ISO 8601 in UTC, ``yyyy-mm-ddThh:mm:ss.ffffffZ``."""
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _page(title: str, body: str) -> bytes:
    return (
        "<!DOCTYPE html>\n<html>\n<head>\n"
        f'<meta name="pypi:repository-version" content="{API_VERSION}">\n'
        f"<title>{html.escape(title)}</title>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n{body}</body>\n</html>\n"
    ).encode()


def _json(document: dict[str, Any]) -> bytes:
    return msgspec.json.encode(document)
