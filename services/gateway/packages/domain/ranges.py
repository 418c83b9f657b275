"""Single byte ranges (RFC 9110 §14): ``Range: bytes=a-b``, ``bytes=a-``, ``bytes=-n``.

A range set the server cannot use (another unit, a malformed or multi-range set) is
ignored, as RFC 9110 allows: the whole artifact is answered with 200. A well-formed range
that starts at or past the end is 416 with ``Content-Range: bytes */<size>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.gateway.packages.domain.errors import RangeNotSatisfiable

_SINGLE = re.compile(r"^bytes=(\d{0,19})-(\d{0,19})$")


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # exclusive

    @property
    def length(self) -> int:
        return self.end - self.start

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end - 1}/{size}"


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range to answer, None to answer everything; 416 when unsatisfiable."""
    if header is None:
        return None
    match = _SINGLE.match(header.strip().replace(" ", ""))
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if not first and not last:
        return None
    if not first:  # suffix: the last n bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(size)
        return ByteRange(max(size - suffix, 0), size)
    start = int(first)
    end = size if not last else int(last) + 1
    if last and int(last) < start:
        return None  # invalid: ignored
    if start >= size:
        raise RangeNotSatisfiable(size)
    return ByteRange(start, min(end, size))


def if_range_allows(if_range: str | None, etag: str) -> bool:
    """``If-Range``: the range applies only while the representation is the one the client
    has (strong comparison with our ETag; a date never matches: we keep no modification
    times that could be compared safely)."""
    return if_range is None or if_range.strip() == etag
