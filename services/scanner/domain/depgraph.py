"""Dependency-graph rules shared by the SBOM and lockfile readers: who is direct, which scope
a transitive package inherits."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence

from .model import Scope

# Most inclusive first: a package needed at runtime by anyone is required, whatever else
# also pulls it in for development.
SCOPE_RANK: dict[Scope, int] = {"required": 0, "optional": 1, "dev": 2, "excluded": 3, "unknown": 4}


def widest_scope(scopes: Iterable[Scope]) -> Scope:
    """The most inclusive of ``scopes`` (``unknown`` when there are none)."""
    return min(scopes, key=SCOPE_RANK.__getitem__, default="unknown")


def direct_flags(
    refs: Sequence[str], edges: Mapping[str, Sequence[str]], roots: Sequence[str]
) -> dict[str, bool] | None:
    """``direct`` for every ref, or None when the graph has no edges to tell.

    With a root that has edges, direct means "a child of a root". Without one (no subject
    component, or the subject has no dependency entry), the top of the forest is direct:
    refs no other component depends on.
    """
    if not any(edges.values()):
        return None
    root_children = {child for root in roots for child in edges.get(root, ())}
    if root_children:
        return {ref: ref in root_children for ref in refs}
    depended_on = {child for children in edges.values() for child in children}
    return {ref: ref not in depended_on for ref in refs}


def propagate_scopes(
    entry_points: Mapping[str, Scope], edges: Mapping[str, Sequence[str]]
) -> dict[str, Scope]:
    """The scope each reachable ref inherits from the direct dependencies it is reached from.

    ``entry_points`` maps direct dependencies to their declared scope; every ref reachable
    from one gets the widest scope among the entry points it is reachable from.
    """
    result: dict[str, Scope] = {}
    # Breadth-first per scope, widest first: a ref keeps the first (widest) scope it gets.
    for scope in sorted(set(entry_points.values()), key=SCOPE_RANK.__getitem__):
        queue = deque(ref for ref, s in entry_points.items() if s == scope and ref not in result)
        for ref in queue:
            result[ref] = scope
        while queue:
            ref = queue.popleft()
            for child in edges.get(ref, ()):
                if child not in result:
                    result[child] = scope
                    queue.append(child)
    return result
