"""RubyGems: ``Gem::Version`` order.

``Gem::Version`` turns ``-`` into ``.pre.``, splits into numeric and letter segments,
drops trailing zeros of the numeric part and of the part from the first letter on
("canonical segments"), then compares segment by segment with the shorter side padded
with ``0``, a letter segment sorting below any number (so ``1.0.a < 1.0 < 1.0.1``).

Because padding is with ``0``, zeros that sit *between* other segments cannot be plain tuple
elements (``[1, "a"]`` vs ``[1, "a", 0, "b"]`` is decided by ``"b"`` against the padding).
So each segment carries the count of zeros before it: a letter segment after ``z`` zeros is
``(0, z, letters)`` (more zeros = closer to the padding = greater), the end is ``(1,)``, a
number after ``z`` zeros is ``(2, -z, number)``. Tuple order on that encoding is exactly
``Gem::Version#<=>``.
"""

from __future__ import annotations

import re

from ._base import InvalidVersion, VersionKey, precheck

_GEM = re.compile(r"[0-9]+(?:\.[0-9a-zA-Z]+)*(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?")
_SEGMENT = re.compile(r"[0-9]+|[a-z]+", re.IGNORECASE)
_END = (1,)


def _canonical(segments: list[int | str]) -> list[int | str]:
    first_letter = next((i for i, s in enumerate(segments) if isinstance(s, str)), len(segments))
    out: list[int | str] = []
    for part in (segments[:first_letter], segments[first_letter:]):
        while part and part[-1] == 0:
            part = part[:-1]
        out.extend(part)
    return out


def rubygems_key(version: str) -> VersionKey:
    text = precheck("RubyGems", version)
    if _GEM.fullmatch(text) is None:
        raise InvalidVersion("RubyGems", version, "not a Gem::Version")
    raw = _SEGMENT.findall(text.replace("-", ".pre."))
    segments: list[int | str] = [int(s) if s.isdigit() else s for s in raw]
    out: list[VersionKey] = []
    zeros = 0
    for seg in _canonical(segments):
        if seg == 0:
            zeros += 1
        elif isinstance(seg, str):
            out.append((0, zeros, seg))
            zeros = 0
        else:
            out.append((2, -zeros, seg))
            zeros = 0
    out.append(_END)
    return tuple(out)
