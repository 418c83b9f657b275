"""Maven: the POM reference's version order (as ComparableVersion and OSV implement it),
expressed as a total order.

Parsing follows the spec: split on ``.`` and ``-`` and at every digit/letter transition (a
transition acts as ``-``), lower-case, ``cr`` -> ``rc``, ``ga``/``final``/``release`` -> the
empty qualifier, ``a``/``b``/``m`` directly before a number -> alpha/beta/milestone, leading
zeros dropped; then trailing "null" tokens (``0``, empty) are trimmed at the end and before
every ``-``.

Ordering: qualifiers ``alpha < beta < milestone < rc < snapshot < "" < sp < unknown``
(unknown ones lexically); ``.qualifier < -qualifier < -number < .number``; a shorter version
is padded with "null" tokens. That padding rule makes Maven's relation cyclic in rare
shapes — ``1-snapshot < 1 < 1.sp < 1-snapshot`` holds in Maven itself — so no sort key can
agree with it everywhere. This key agrees with it on every comparison that is not part of
such a cycle, and breaks the cycles the way people read versions: qualifiers below a release
(alpha..snapshot) sort below the version they qualify whatever their separator, and ones
above a release (sp, unknown) above it. Concretely, where Maven says ``1.sp < 1-alpha`` and
``1.sp < 1.0.alpha``, this key says the opposite; tests pin both the agreement on real-world
shapes and these deviations.
"""

from __future__ import annotations

import re

from ._base import VersionKey, precheck

_KEYWORDS = ("alpha", "beta", "milestone", "rc", "snapshot", "", "sp")
_KEYWORD_INDEX = {k: i for i, k in enumerate(_KEYWORDS)}
_RELEASE_INDEX = _KEYWORD_INDEX[""]
_ALIASES = {"cr": "rc", "ga": "", "final": "", "release": ""}
_SHORT = {"a": "alpha", "b": "beta", "m": "milestone"}
_NULLS = ("0", "")
_SPLIT = re.compile(r"([-.])")
_TRANSITION = re.compile(r"\d+|\D+")

# Slots of the total order (see the module docstring). END stands for "no more tokens".
_DOT_LOW, _DASH_LOW, _ZERO_RUN_LOW, _END, _DASH_EMPTY = 10, 20, 25, 30, 35
_DOT_HIGH, _DASH_HIGH, _DASH_NUM, _ZERO_RUN_HIGH, _DOT_NUM = 40, 50, 60, 70, 80
_END_KEY = (_END,)


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pieces = _SPLIT.split(text.lower())
    for i in range(0, len(pieces), 2):
        prefix = "" if i == 0 else pieces[i - 1]
        chunk = pieces[i]
        runs = _TRANSITION.findall(chunk) or [""]
        for j, run in enumerate(runs):
            if j > 0:
                prefix = "-"
            value = run or "0"
            value = _ALIASES.get(value, value)
            if j + 1 < len(runs):
                value = _SHORT.get(value, value)
            if value.isdigit():
                value = str(int(value))
            tokens.append((prefix, value))
    # Trim trailing nulls, then the nulls before each remaining "-" token, from the end.
    i = len(tokens) - 1
    while i > 0:
        if tokens[i][1] in _NULLS:
            tokens.pop(i)
            i -= 1
            continue
        while i >= 0 and tokens[i][0] != "-":
            i -= 1
        i -= 1
    return tokens


def _qualifier(value: str) -> tuple[int, str]:
    index = _KEYWORD_INDEX.get(value)
    return (index, "") if index is not None else (len(_KEYWORDS), value)


def _element(prefix: str, value: str) -> VersionKey:
    if value.isdigit():
        return (_DASH_NUM, int(value)) if prefix == "-" else (_DOT_NUM, int(value))
    qual = _qualifier(value)
    if prefix == "-":
        if value == "":
            return (_DASH_EMPTY,)
        return (_DASH_LOW, *qual) if qual[0] < _RELEASE_INDEX else (_DASH_HIGH, *qual)
    return (_DOT_LOW, *qual) if qual[0] <= _RELEASE_INDEX else (_DOT_HIGH, *qual)


def maven_key(version: str) -> VersionKey:
    tokens = _tokens(precheck("Maven", version))
    first_prefix, first = tokens[0]
    del first_prefix
    out: list[VersionKey] = [(1, int(first)) if first.isdigit() else (0, *_qualifier(first))]
    zeros = 0  # a run of ".0" tokens that trimming kept: it is always followed by a "." token
    for prefix, value in tokens[1:]:
        if prefix == "." and value == "0":
            zeros += 1
            continue
        element = _element(prefix, value)
        if zeros:
            if element[0] == _DOT_NUM:
                element = (_ZERO_RUN_HIGH, 1, -zeros, element[1])
            elif element[0] == _DOT_HIGH:
                element = (_ZERO_RUN_HIGH, 0, zeros, *element[1:])
            else:  # a low "." qualifier after zeros: below the release, like "1.0.alpha"
                element = (_ZERO_RUN_LOW, zeros, *element[1:])
            zeros = 0
        out.append(element)
    out.append(_END_KEY)
    return tuple(out)
