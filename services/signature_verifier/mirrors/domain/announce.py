"""Which commits a fetch announces (``commit.pushed``, ``source: git``), and their ids.

Pure: the git walk hands in the default branch's first-parent chain from the new head.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence

# Most commits one fetch announces: the newest ones (a mirror of a long history, or a
# branch moved far, is not replayed as thousands of pushes).
ANNOUNCE_MAX = 100
# Names the announcements (uuid5): stable forever, the ids are in the stream.
_ANNOUNCE = uuid.UUID("6d1c3f0e-8a4b-5c2d-9e7f-1b3a5c7d9e0f")
_FETCHED = uuid.UUID("0b7e2d4c-3f1a-5e6b-8c9d-2a4f6e8b0c1d")


def new_commits(
    chain: Sequence[str], *, old_head: str | None, old_is_ancestor: bool, cap: int = ANNOUNCE_MAX
) -> list[str]:
    """The commits to announce, oldest first, the new head last.

    ``chain``: first-parent ancestors of the new head, newest first (the head itself
    first), at least up to ``old_head`` or ``cap`` long. Nothing when the head did not
    move; only the new head on the first fetch or when ``old_head`` is not an ancestor (a
    force push); otherwise the commits after ``old_head``, at most the ``cap`` newest.
    """
    if not chain:
        return []
    head = chain[0]
    if old_head == head:
        return []
    if old_head is None or not old_is_ancestor:
        return [head]
    try:
        newer = list(chain[: chain.index(old_head)])
    except ValueError:  # merged in beside the first-parent line, or farther than the chain
        newer = list(chain)
    return list(reversed(newer[:cap]))


def announcement_id(
    *, repo: str, branch: str, old_head: str | None, new_head: str, commit: str
) -> str:
    """The event id of one announcement: a retried fetch job publishes the same ids, which
    JetStream drops as duplicates."""
    key = "\x00".join((repo.lower(), branch, old_head or "", new_head, commit))
    return str(uuid.uuid5(_ANNOUNCE, key))


def refs_changed(before: Mapping[str, str], after: Mapping[str, str]) -> int:
    """How many refs a fetch created, moved or deleted."""
    return sum(1 for name in before.keys() | after.keys() if before.get(name) != after.get(name))


def fetched_id(*, repo: str, before: Mapping[str, str], after: Mapping[str, str]) -> str:
    """The event id of ``mirror.fetched``: the same refs moved the same way, the same id (a
    retried fetch job that publishes again is dropped as a duplicate)."""
    digest = hashlib.sha256()
    for refs in (before, after):
        for name in sorted(refs):
            digest.update(f"{name}\x00{refs[name]}\x00".encode())
        digest.update(b"\x01")
    return str(uuid.uuid5(_FETCHED, f"{repo.lower()}\x00{digest.hexdigest()}"))
