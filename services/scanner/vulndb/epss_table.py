"""EPSS scores in memory: CVE → (score, percentile), packed.

FIRST scores every published CVE (about 270,000): as a dict of tuples that is ~75 MB of
Python objects, here three arrays sorted by CVE number, 24 bytes a CVE (~6.5 MB), looked
up by bisection. EPSS arrives as whole daily files, so an update builds a new table by
merging sorted changes in (a table is never changed once built, so a reader never sees one
half-updated).
"""

from __future__ import annotations

import bisect
import re
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field

_CVE = re.compile(r"CVE-(\d{4})-(\d{4,10})")
_YEAR = 10**10


def cve_key(cve: str) -> int | None:
    """CVE-YYYY-N as one integer ordered by year, then number; None for anything else."""
    match = _CVE.fullmatch(cve)
    return int(match.group(1)) * _YEAR + int(match.group(2)) if match else None


@dataclass
class EpssRows:
    """Rows sorted by ``cve_key``, packed the same way (the changes an import brought)."""

    keys: array[int] = field(default_factory=lambda: array("q"))
    scores: array[float] = field(default_factory=lambda: array("d"))
    percentiles: array[float] = field(default_factory=lambda: array("d"))

    def append(self, cve: str, score: float, percentile: float) -> None:
        key = cve_key(cve)
        if key is None:
            return
        if self.keys and key <= self.keys[-1]:
            raise ValueError(f"EPSS rows out of order at {cve}")
        self.keys.append(key)
        self.scores.append(score)
        self.percentiles.append(percentile)

    def __len__(self) -> int:
        return len(self.keys)


class EpssTable:
    def __init__(self, rows: EpssRows | None = None) -> None:
        self._rows = rows or EpssRows()

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, cve: str) -> tuple[float, float] | None:
        key = cve_key(cve)
        if key is None:
            return None
        rows = self._rows
        at = bisect.bisect_left(rows.keys, key)
        if at < len(rows.keys) and rows.keys[at] == key:
            return rows.scores[at], rows.percentiles[at]
        return None

    def get_many(self, ids: Iterable[str]) -> dict[str, tuple[float, float]]:
        found = {}
        for cve in ids:
            score = self.get(cve)
            if score is not None:
                found[cve] = score
        return found

    def merged(self, changes: EpssRows) -> EpssTable:
        """A new table: ``changes`` replace or add to this table's rows (a linear merge)."""
        if not self._rows.keys:
            return EpssTable(changes)
        old, new, out = self._rows, changes, EpssRows()
        i = j = 0
        while i < len(old.keys) or j < len(new.keys):
            if j == len(new.keys) or (i < len(old.keys) and old.keys[i] < new.keys[j]):
                source, at = old, i
                i += 1
            else:
                if i < len(old.keys) and old.keys[i] == new.keys[j]:
                    i += 1  # replaced
                source, at = new, j
                j += 1
            out.keys.append(source.keys[at])
            out.scores.append(source.scores[at])
            out.percentiles.append(source.percentiles[at])
        return EpssTable(out)
