"""Helpers the SBOM parsers share: precise locations for decode errors, spec versions."""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator
from contextlib import contextmanager

import msgspec

from ..errors import MalformedDocument, UnsupportedSpecVersion
from ..limits import JSON_DEPTH_LIMIT, nested_too_deep

_AT_PATH = re.compile(r" - at `(\$[^`]*)`$")
_AT_BYTE = re.compile(r" \(byte (\d+)\)$")


def line_column(data: bytes, offset: int) -> str:
    """``line L, column C`` (1-based) of a byte offset."""
    offset = max(0, min(offset, len(data)))
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return f"line {line}, column {column}"


def json_error(exc: Exception, data: bytes, what: str) -> MalformedDocument:
    """Our error for a msgspec decode failure, located by JSON path or line and column.

    Located from the data itself where we can, not from the wording of msgspec's message,
    which changes between releases (0.23 stopped naming the byte of invalid UTF-8).
    A ``RecursionError`` is msgspec refusing JSON nested beyond the interpreter's recursion
    limit: refused at once, before the nesting turns into memory."""
    if isinstance(exc, RecursionError):
        return nested_too_deep(what, limit=JSON_DEPTH_LIMIT, location="$")
    if isinstance(exc, UnicodeDecodeError | msgspec.DecodeError):
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as full:
            return MalformedDocument(
                f"{what} is not valid UTF-8", location=line_column(data, full.start)
            )
        if isinstance(exc, UnicodeDecodeError):
            return MalformedDocument(f"{what} is not valid UTF-8")
    message = str(exc)
    if isinstance(exc, msgspec.ValidationError):
        match = _AT_PATH.search(message)
        location = match.group(1) if match else "$"
        detail = _AT_PATH.sub("", message)
        return MalformedDocument(f"{what} does not match the schema: {detail}", location=location)
    if "truncated" in message:
        return MalformedDocument(
            f"{what} is truncated", location=f"end of input, {line_column(data, len(data))}"
        )
    match = _AT_BYTE.search(message)
    location = line_column(data, int(match.group(1))) if match else None
    return MalformedDocument(
        f"{what} is not valid JSON: {_AT_BYTE.sub('', message)}", location=location
    )


def cyclonedx_version(text: str, *, location: str) -> tuple[str, str | None]:
    """(version, warning or None); 1.2-1.6 are read, a later 1.x is read as 1.6 with a warning."""
    match = re.fullmatch(r"1\.(\d+)", text.strip())
    if match is None or int(match.group(1)) < 2:
        raise UnsupportedSpecVersion(
            f"CycloneDX {text!r} is not supported (1.2 to 1.6 are)", location=location
        )
    if int(match.group(1)) > 6:
        return text.strip(), f"CycloneDX {text} is newer than 1.6; read with the 1.6 rules"
    return text.strip(), None


def spdx_version(text: str, *, location: str) -> tuple[str, str | None]:
    """(version, warning or None) of an ``SPDX-2.x`` tag; 2.2 and 2.3 are read as such."""
    match = re.fullmatch(r"SPDX-(2\.\d+)", text.strip())
    if match is None:
        raise UnsupportedSpecVersion(
            f"SPDX version {text!r} is not supported (SPDX-2.2 and SPDX-2.3 are)",
            location=location,
        )
    version = match.group(1)
    if version not in ("2.2", "2.3"):
        return version, f"SPDX {version} is read with the SPDX 2.3 rules"
    return version, None


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector (reference counting still frees everything) while
    a parser allocates many acyclic objects; restored as it was, whatever happens."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
