"""Packagist: Composer's version normalisation, then PHP ``version_compare`` order.

Composer normalises a version before comparing (``VersionParser::normalize``): a leading
``v`` and build metadata go, the numeric part is padded to four parts (``1.2`` ->
``1.2.0.0``), stability words are spelled out (``b1`` -> ``beta1``, ``p2``/``pl2`` ->
``patch2``, ``rc`` -> ``RC``), ``1.x-dev`` style branches become ``1.9999999...-dev``.
It then compares with PHP's ``version_compare``: separators ``-_+`` become ``.``, a dot goes
between digits and letters, and parts compare numerically, or by the special-form order
``unknown < dev < alpha = a < beta = b < RC = rc < number < pl = p`` (a part matches a
form when it *starts* with it, as PHP does). A shorter version is treated as followed by
an implicit ``#`` (number rank), so ``1.0.0.0-beta < 1.0.0.0 < 1.0.0.0-patch1``.

Strings Composer would not normalise (rare in OSV data) are compared by ``version_compare``
alone, as OSV.dev does; ``dev-<branch>`` is a branch name, not a version, and is refused.
"""

from __future__ import annotations

import re

from ._base import InvalidVersion, VersionKey, precheck

_MODIFIER = r"[._-]?(?:(stable|beta|b|RC|alpha|a|patch|pl|p)((?:[.-]?\d+)*+)?)?([.-]?dev)?"
_CLASSICAL = re.compile(r"v?(\d{1,5}+)(\.\d++)?(\.\d++)?(\.\d++)?" + _MODIFIER, re.IGNORECASE)
_DATE = re.compile(r"v?(\d{4}(?:[.:-]?\d{2}){1,6}(?:[.:-]?\d{1,3}){0,2})" + _MODIFIER, re.I)
_BRANCH = re.compile(r"v?(\d+|[xX*])(\.(?:\d+|[xX*]))?(\.(?:\d+|[xX*]))?(\.(?:\d+|[xX*]))?")
_BRANCH_DEV = re.compile(r"(.*?)[.-]?dev", re.IGNORECASE)
_STABILITY = {"a": "alpha", "b": "beta", "p": "patch", "pl": "patch", "rc": "RC"}

_SEPARATORS = re.compile(r"[-_+.]+")
_BOUNDARY = re.compile(r"(?<=\d)(?=\D)|(?<=\D)(?=\d)")
_SPECIAL_FORMS: tuple[tuple[str, int], ...] = (
    *(("dev", 0), ("alpha", 1), ("a", 1), ("beta", 2), ("b", 2)),
    *(("RC", 3), ("rc", 3), ("#", 4), ("pl", 5), ("p", 5)),
)
_NUMBER_RANK = 4
_END = (_NUMBER_RANK, -1)  # the implicit "#": above dev..RC, below every number and pl/p


def _expand_stability(word: str) -> str:
    lowered = word.lower()
    return _STABILITY.get(lowered, lowered)


def _with_modifiers(base: str, match: re.Match[str], index: int) -> str:
    stability, number, dev = match.group(index, index + 1, index + 2)
    if stability:
        if stability.lower() == "stable":
            return base
        base += "-" + _expand_stability(stability) + (number or "").lstrip(".-")
    if dev:
        base += "-dev"
    return base


def composer_normalize(version: str) -> str | None:
    """Composer's normalised spelling, or None when Composer would refuse the string."""
    text = version.split(" as ", 1)[0].strip()
    text = text.split("#", 1)[0]
    if "+" in text:
        text = text.split("+", 1)[0]
    classical = _CLASSICAL.fullmatch(text)
    if classical is not None:
        numbers = classical.group(1, 2, 3, 4)
        base = numbers[0] + "".join(p or ".0" for p in numbers[1:])
        return _with_modifiers(base, classical, 5)
    date = _DATE.fullmatch(text)
    if date is not None:
        return _with_modifiers(re.sub(r"\D", ".", date.group(1)), date, 2)
    branch = _BRANCH_DEV.fullmatch(text)
    if branch is not None:
        digits = _BRANCH.fullmatch(branch.group(1))
        if digits is not None:
            parts = [p.lstrip(".") if p else "x" for p in digits.groups()]
            return ".".join("9999999" if p in "xX*" else p for p in parts) + "-dev"
    return None


def _part_key(part: str) -> VersionKey:
    if part.isdigit():
        return (_NUMBER_RANK, int(part))
    for form, rank in _SPECIAL_FORMS:
        if part.startswith(form):
            return (rank,)
    return (-1,)


def packagist_key(version: str) -> VersionKey:
    text = precheck("Packagist", version)
    if text.lower().startswith("dev-") or text.lower() in ("master", "trunk", "default"):
        raise InvalidVersion("Packagist", version, "a branch name, not a version")
    normalized = composer_normalize(text)
    if normalized is None:
        normalized = text[1:] if text[:1] in "vV" else text
    canonical = _BOUNDARY.sub(".", _SEPARATORS.sub(".", normalized))
    parts = [p for p in canonical.split(".") if p]
    if not parts:
        raise InvalidVersion("Packagist", version, "no version parts")
    return (*(_part_key(p) for p in parts), _END)
