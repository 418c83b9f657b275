"""Which block applies to each stored artifact, told to the rest of the system.

Downloads ask the blocks themselves (``artifact_fetch``); the release gate cannot (block
matching is the scanner's rule, and services do not call each other), so the scanner
publishes ``artifact.blocked`` when a block starts to apply to an artifact (or another block
takes over) and ``artifact.unblocked`` when none applies any more. The registry projection
keeps what was last said per artifact (``blocked_by``); :meth:`BlockStates.reconcile`
compares it with what the blocks say now and publishes the differences.

It is convergent: it publishes nothing when the two agree, so running it twice, after a
crash or a redelivery, is harmless. Reconciliations run one at a time (a Postgres advisory
lock), each waiting until the projection applied what it published, so the next one reads
what this one said; the event ids derive from (artifact, the sequence of its last state
event, the new state), so two workers that read the same state publish the same ids, which
JetStream's duplicate window drops.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from contracts.envelope import EventPayload
from contracts.events.registry import ArtifactBlocked, ArtifactUnblocked
from contracts.rpc.registry import Block
from services.scanner.registry import gate_store, store
from services.scanner.registry.domain import artifact_ref, matching_block
from shared.bus import Bus
from shared.commands import advisory_locked, wait_visible
from shared.projection import ProjectionRunner
from shared.settings import Settings

SYSTEM = "system"
STATE_LOCK = "registry-block-state"
# Fixed forever: the ids of the state events already published derive from it.
_STATES = uuid.UUID("2d7c9e4b-1f6a-5b3c-8d2e-4a6f8b0c1d3e")
# Publishes in flight at once (each waits for its ack).
PUBLISH_CHUNK = 64


def state_event_id(artifact_id: str, after_seq: int, block_id: str | None) -> str:
    return str(uuid.uuid5(_STATES, f"{artifact_id}\x00{after_seq}\x00{block_id or '-'}"))


@dataclass(frozen=True)
class Reconciled:
    blocked: int = 0
    unblocked: int = 0


@dataclass
class BlockStates:
    pool: asyncpg.Pool
    bus: Bus
    runner: ProjectionRunner
    settings: Settings

    async def reconcile(
        self, artifact_ids: Sequence[str], *, causation_id: str | None = None
    ) -> Reconciled:
        """Publish what changed about the blocks applying to these artifacts."""
        if not artifact_ids:
            return Reconciled()
        async with advisory_locked(self.pool, STATE_LOCK) as conn:
            states = await gate_store.artifact_states(conn, artifact_ids)
            changes = await self._changes(conn, states)
            sequence = await self._publish(changes, causation_id=causation_id)
            if sequence:
                await wait_visible(self.runner, sequence, settings=self.settings)
        return Reconciled(
            blocked=sum(isinstance(p, ArtifactBlocked) for p, _ in changes),
            unblocked=sum(isinstance(p, ArtifactUnblocked) for p, _ in changes),
        )

    async def _changes(
        self, conn: asyncpg.Connection, states: list[gate_store.ArtifactState]
    ) -> list[tuple[EventPayload, str]]:
        keys = {
            ref.key
            for state in states
            if (ref := artifact_ref(store.facts_of(state.artifact))) is not None
        }
        rows = await store.candidate_blocks(
            conn,
            digests=sorted({s.artifact.digest for s in states}),
            purl_keys=sorted(keys),
        )
        rules = [row.rule for row in rows]
        blocks = {row.block.id: row.block for row in rows}
        now = dt.datetime.now(dt.UTC)
        changes: list[tuple[EventPayload, str]] = []
        for state in states:
            found = matching_block(rules, store.facts_of(state.artifact), now=now)
            wanted = found.id if found is not None else None
            if wanted == state.blocked_by:
                continue
            event_id = state_event_id(state.artifact.id, state.block_state_seq, wanted)
            if wanted is not None:
                changes.append((blocked(state, blocks[wanted]), event_id))
            elif state.blocked_by is not None:
                changes.append((unblocked(state, state.blocked_by), event_id))
        return changes

    async def _publish(
        self, changes: list[tuple[EventPayload, str]], *, causation_id: str | None
    ) -> int:
        """Publish ``changes``; the highest stream sequence (0: nothing published)."""
        highest = 0
        for start in range(0, len(changes), PUBLISH_CHUNK):
            published = await asyncio.gather(
                *(
                    self.bus.publish_acked(
                        payload,
                        aggregate=f"artifact:{payload.id}",  # type: ignore[attr-defined]
                        actor=SYSTEM,
                        causation_id=causation_id,
                        event_id=event_id,
                    )
                    for payload, event_id in changes[start : start + PUBLISH_CHUNK]
                )
            )
            highest = max([highest, *(p.sequence for p in published)])
        return highest


def blocked(state: gate_store.ArtifactState, block: Block) -> ArtifactBlocked:
    artifact = state.artifact
    return ArtifactBlocked(
        id=artifact.id,
        repo_id=artifact.repo_id,
        project_id=artifact.project_id,
        digest=artifact.digest,
        path=artifact.path,
        purl=artifact.purl,
        provenance=artifact.provenance,
        block_id=block.id,
        reason=block.reason,
        source=block.source,
        advisory_id=block.advisory_id,
    )


def unblocked(state: gate_store.ArtifactState, block_id: str) -> ArtifactUnblocked:
    artifact = state.artifact
    return ArtifactUnblocked(
        id=artifact.id,
        repo_id=artifact.repo_id,
        project_id=artifact.project_id,
        digest=artifact.digest,
        provenance=artifact.provenance,
        block_id=block_id,
    )
