"""The hash chain of the audit log, as pure functions.

Every entry links to the one before it (in stream order)::

    hash = SHA-256(prev_hash ‖ event bytes)

where ``prev_hash`` is the previous entry's 32-byte hash — :data:`GENESIS_HASH` (32 zero
bytes) for the first entry — and the event bytes are the canonical JSON of the event
envelope (see :mod:`services.audit.domain.entries`). Changing, removing or reordering an
entry breaks the link at that entry or the one after it; :func:`verify_chain` names the first
entry whose links do not hold.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple, Protocol, TypeVar

GENESIS_HASH = bytes(32)


class Link(NamedTuple):
    prev_hash: bytes
    hash: bytes


class Linked(Protocol):
    """What verification needs of a stored entry."""

    @property
    def sequence(self) -> int: ...
    @property
    def prev_hash(self) -> bytes: ...
    @property
    def hash(self) -> bytes: ...
    @property
    def event(self) -> bytes: ...


L = TypeVar("L", bound=Linked)


class ChainOrderError(ValueError):
    """An entry would be appended at or before the chain's head: the chain is stream order."""


def link_hash(prev_hash: bytes, event: bytes) -> bytes:
    if len(prev_hash) != 32:
        raise ValueError(f"a chain hash is 32 bytes, got {len(prev_hash)}")
    return hashlib.sha256(prev_hash + event).digest()


def chain(prev_hash: bytes, events: Iterable[bytes]) -> list[Link]:
    """The links of ``events`` appended, in order, after an entry whose hash is ``prev_hash``."""
    links: list[Link] = []
    for event in events:
        link = Link(prev_hash, link_hash(prev_hash, event))
        links.append(link)
        prev_hash = link.hash
    return links


def check_appendable(head_sequence: int, sequences: Sequence[int]) -> None:
    """Entries are appended in strictly increasing stream order after the head."""
    previous = head_sequence
    for sequence in sequences:
        if sequence <= previous:
            raise ChainOrderError(
                f"stream sequence {sequence} cannot follow {previous} in the audit chain"
            )
        previous = sequence


class Verdict(NamedTuple):
    checked: int  # entries examined, up to and including a bad one
    first_bad_sequence: int | None
    problem: str | None
    last_sequence: int  # the last entry that verified (the start when none did)
    last_hash: bytes

    @property
    def ok(self) -> bool:
        return self.first_bad_sequence is None


def verify_chain(
    entries: Iterable[L],
    *,
    prev_sequence: int = 0,
    prev_hash: bytes = GENESIS_HASH,
    also: Callable[[L], str] | None = None,
) -> Verdict:
    """Check each entry's links (and ``also``: any further check, "" when it passes), in
    order, starting after the entry ``prev_sequence`` whose hash is ``prev_hash``; stops at
    the first bad entry."""
    checked = 0
    for entry in entries:
        checked += 1
        problem = ""
        if entry.sequence <= prev_sequence:
            problem = f"out of order after sequence {prev_sequence}"
        elif entry.prev_hash != prev_hash:
            problem = "prev_hash is not the hash of the entry before it (changed or removed)"
        elif link_hash(prev_hash, entry.event) != entry.hash:
            problem = "hash does not match SHA-256(prev_hash ‖ event): the event was changed"
        elif also is not None:
            problem = also(entry)
        if problem:
            return Verdict(checked, entry.sequence, problem, prev_sequence, prev_hash)
        prev_sequence, prev_hash = entry.sequence, entry.hash
    return Verdict(checked, None, None, prev_sequence, prev_hash)
