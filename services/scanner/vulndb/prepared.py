"""Imports planned by this process's command handler, handed to its own projection.

The handler has read, decoded and planned the bundle already; when the ``vulndb``
projection of the same process applies that import's event, it takes the plan from here
instead of reading the blob again — if the database still holds what the plan was made
against (it always does while imports are serialised; a replay, a standby replica or a
retry after a rollback finds nothing here and reads the blob).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from services.scanner.vulndb.bundle import Bundle, Held, ImportPlan


@dataclass(frozen=True, slots=True)
class Prepared:
    bundle: Bundle
    held: Mapping[str, Held]
    plan: ImportPlan


@dataclass
class PreparedImports:
    _by_import: dict[str, Prepared] = field(default_factory=dict)

    def put(self, import_id: str, prepared: Prepared) -> None:
        self._by_import[import_id] = prepared

    def take(self, import_id: str) -> Prepared | None:
        return self._by_import.pop(import_id, None)

    def drop(self, import_id: str) -> None:
        self._by_import.pop(import_id, None)
