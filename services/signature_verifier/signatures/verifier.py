"""Verify indexed commits in parallel and publish ``commit.verified`` for what changed.

The key set is loaded once per version (``key_set``, moved by every user / key event) and
handed to child processes with each chunk of commits; a child parses it only when its
version changes (``parallel.py``). A verdict equal to the cached row (reason, matched key,
issuer) publishes nothing; a new or changed one publishes ``commit.verified`` with an id
derived from (repo, oid, reason, key, key-set version), so a retried job is dropped by
JetStream's duplicate window instead of stamping twice.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import math
import multiprocessing
import os
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import asyncpg

from contracts.events.commits import CommitVerified
from services.signature_verifier.signatures import store
from services.signature_verifier.signatures.parallel import (
    Material,
    Verdict,
    verify_chunk,
    warm,
    watch_parent,
)
from shared.bus import Bus
from shared.logging import get_logger

log = get_logger(__name__)

_EVENTS = uuid.UUID("5b0f2a4e-8c1d-5e7f-9a3b-2d6c4e8f1a07")
CHUNK_MIN, CHUNK_MAX = 16, 250
# Commits read from the index per round: bounds memory whatever the history's size.
ROUND = 5000
Progress = Callable[[int], Awaitable[None]]
Mode = Literal["stamp", "revoke"]


def verified_event_id(repo_key: str, oid: str, reason: str, key: int | None, version: int) -> str:
    parts = (repo_key, oid, reason, str(key or ""), str(version))
    return str(uuid.uuid5(_EVENTS, "\x00".join(parts)))


@dataclass(frozen=True)
class KeySet:
    version: int
    material: tuple[Material, ...]
    logins: dict[int, str]


@dataclass
class Verifier:
    pool: asyncpg.Pool
    bus: Bus
    workers: int = field(default_factory=lambda: max(1, os.cpu_count() or 1))
    _executor: concurrent.futures.ProcessPoolExecutor | None = None
    _keys: KeySet | None = None

    # ---- lifecycle --------------------------------------------------------------------------
    def executor(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._executor is None:
            # spawn: the service runs threads (asyncpg, nats); a forked child would inherit
            # their locks mid-flight.
            self._executor = concurrent.futures.ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=watch_parent,
                initargs=(os.getpid(),),
            )
        return self._executor

    async def warm(self) -> None:
        """Start the children (and their imports) before the first chunk needs them."""
        loop = asyncio.get_running_loop()
        executor = self.executor()
        await asyncio.gather(*(loop.run_in_executor(executor, warm) for _ in range(self.workers)))

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    # ---- the key set ------------------------------------------------------------------------
    async def key_set(self) -> KeySet:
        version = await store.key_set_version(self.pool)
        if self._keys is None or self._keys.version != version:
            async with self.pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
                version = await store.key_set_version(conn)
                rows = await store.key_material(conn)
            self._keys = KeySet(
                version=version,
                material=tuple(Material(r.key_store_id, r.kind, r.text, r.emails) for r in rows),
                logins={r.key_store_id: r.login for r in rows},
            )
        return self._keys

    # ---- verification -----------------------------------------------------------------------
    async def verify_repo(
        self,
        *,
        repo: str,
        path: str,
        oids: Sequence[str],
        mode: Mode = "stamp",
        progress: Progress | None = None,
    ) -> int:
        """Verify ``oids`` of the mirror at ``path``; returns how many verdicts were
        published (new or changed). ``revoke``: a commit no uploaded key answers for any
        more reads ``unsigned`` (its key was revoked), not ``unknown_key``."""
        if not oids:
            return 0
        keys = await self.key_set()
        loop = asyncio.get_running_loop()
        executor = self.executor()
        size = max(CHUNK_MIN, min(CHUNK_MAX, math.ceil(len(oids) / (self.workers * 4))))
        chunks = [list(oids[i : i + size]) for i in range(0, len(oids), size)]
        futures = [
            loop.run_in_executor(executor, verify_chunk, keys.version, keys.material, path, chunk)
            for chunk in chunks
        ]
        published = 0
        try:
            for next_done in asyncio.as_completed(futures):
                verdicts = await next_done
                published += await self._record(repo, verdicts, keys=keys, mode=mode)
                if progress is not None:
                    await progress(len(verdicts))
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        return published

    async def _record(
        self, repo: str, verdicts: Sequence[Verdict], *, keys: KeySet, mode: Mode
    ) -> int:
        repo_key = store.key_of(repo)
        gone = [v.oid for v in verdicts if v.reason is None]
        present = [v for v in verdicts if v.reason is not None]
        cached = await store.stamps(self.pool, repo_key, [v.oid for v in present])
        now = dt.datetime.now(dt.UTC)
        events: list[tuple[str, CommitVerified]] = []
        for verdict in present:
            reason, key = verdict.reason or "unsigned", verdict.matched_key
            if mode == "revoke" and reason == "unknown_key":
                reason, key = "unsigned", None
            if cached.get(verdict.oid) == store.Stamp(reason, key, verdict.issuer):
                continue
            events.append(
                (
                    verified_event_id(repo_key, verdict.oid, reason, key, keys.version),
                    CommitVerified(
                        repo=repo,
                        commit=verdict.oid,
                        verified=reason == "valid",
                        reason=reason,
                        key_id=verdict.issuer,
                        signer=keys.logins.get(key) if key is not None else None,
                        verified_at=now,
                        key_store_id=key,
                        signature_kind=verdict.kind,  # type: ignore[arg-type]
                    ),
                )
            )
        await asyncio.gather(
            *(
                self.bus.publish_acked(
                    payload, aggregate=f"commit:{repo_key}", actor="system", event_id=event_id
                )
                for event_id, payload in events
            )
        )
        async with self.pool.acquire() as conn, conn.transaction():
            if gone:
                await conn.execute(
                    "DELETE FROM signature_verifier.signed_commits WHERE repo_key = $1 "
                    "AND oid = ANY($2::text[])",
                    repo_key,
                    gone,
                )
            await conn.executemany(
                "UPDATE signature_verifier.signed_commits SET issuer = $3, checked_version = $4 "
                "WHERE repo_key = $1 AND oid = $2",
                [(repo_key, v.oid, v.issuer, keys.version) for v in present],
            )
        return len(events)
