"""Which commits ``git log [--since] [--until] [-- <path>]`` shows, and in which order, as a
pure walk over a commit graph the caller loads lazily.

git's rules, followed here (revision.c: ``get_revision_1``, ``try_to_simplify_commit``,
``get_commit_action``), so a listing agrees with ``git log --format=%H -- <path>``:

* Order: a queue by committer time, newest first; among equal times, first queued first
  (``commit_list_insert_by_date``). Each commit is queued once.
* ``since``: a commit older than it (committer time) is skipped *and its parents are not
  followed* — git stops there, trusting commit times to grow along history.
* ``until``: a newer commit is skipped, its parents still followed.
* Default history simplification for a path: a commit is TREESAME to a parent when the path
  names the same thing in both trees (same blob or tree id and mode, or absent from both).
  Treesame to some parent → hidden, and only the first such parent is followed (the other
  side of a merge that did not bring the path's state is pruned). Treesame to no parent →
  shown, every parent followed. A root commit is shown when the path exists in its tree.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

import msgspec

Id = TypeVar("Id")
# The path's entry in a commit's tree: (object id, file mode), or None when absent.
PathState = tuple[str, int] | None


class Node(msgspec.Struct, Generic[Id], frozen=True, kw_only=True):
    """A commit as the walk needs it."""

    id: Id
    commit_time: int
    parents: tuple[Id, ...]


def simplify(own: PathState, parents: Sequence[PathState]) -> tuple[bool, tuple[int, ...]]:
    """(whether the commit is shown, the indices of the parents to follow)."""
    if not parents:
        return own is not None, ()
    for index, state in enumerate(parents):
        if state == own:
            return False, (index,)
    return True, tuple(range(len(parents)))


def walk(
    start: Id,
    *,
    load: Callable[[Id], Node[Id]],
    path_state: Callable[[Id], PathState] | None = None,
    since: int | None = None,
    until: int | None = None,
) -> Iterator[Node[Id]]:
    """The commits ``git log`` shows from ``start``, newest first. ``path_state`` limits
    the walk to a path (see the module's rules); ``since``/``until`` are Unix seconds
    compared with the committer time. Lazy: stop iterating and nothing more is loaded."""
    counter = 0
    first = load(start)
    queue: list[tuple[int, int, Node[Id]]] = [(-first.commit_time, counter, first)]
    queued = {start}
    while queue:
        _, _, node = heapq.heappop(queue)
        if since is not None and node.commit_time < since:
            continue
        follow: Sequence[Id] = node.parents
        shown = True
        if path_state is not None:
            shown, indices = simplify(path_state(node.id), [path_state(p) for p in node.parents])
            follow = [node.parents[i] for i in indices]
        for parent_id in follow:
            if parent_id in queued:
                continue
            queued.add(parent_id)
            parent = load(parent_id)
            counter += 1
            heapq.heappush(queue, (-parent.commit_time, counter, parent))
        if shown and (until is None or node.commit_time <= until):
            yield node
