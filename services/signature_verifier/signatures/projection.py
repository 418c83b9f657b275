"""``user.*``, ``gpgkey.*``, ``sshkey.*`` and ``commit.verified`` → the signatures read model.

* Users and their e-mails, and the uploaded keys, are what verification checks against;
  every such event moves the key-set version (``key_set``) to its stream sequence, so the
  verifier's parsed-key cache knows when to reload.
* A key added, a key revoked and an e-mail becoming verified each enqueue a job (in this
  transaction, id derived from the event): the re-verification of the commits the change
  can affect runs off the request path (``worker.py``). The jobs table is kept state, so a
  replay finds those jobs done and runs nothing again.
* ``commit.verified`` is the verification cache (``verifications``), read by the commits
  API: ``reason: unsigned`` (a revoked key's rows) reads as not stamped.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import msgspec

from contracts.envelope import Event
from contracts.events.commits import CommitVerified
from contracts.events.identity import UserCreated, UserEmailAdded, UserEmailVerified
from contracts.events.signatures import GpgKeyAdded, GpgKeyRevoked, SshKeyAdded, SshKeyRevoked
from services.signature_verifier.domain.keys import parse_gpg_key
from services.signature_verifier.signatures import store
from shared import jobs

SUBJECTS = ("user.created", "user.email-added", "user.email-verified", "gpgkey.>", "sshkey.>")
VERIFIED_SUBJECT = "commit.verified"

BACKFILL_JOB = "backfill"
REVOKE_JOB = "revoke"
RESTAMP_JOB = "restamp"
VERIFY_JOB = "verify"
REVERIFY_ALL_JOB = "reverify_all"
JOB_KINDS = (VERIFY_JOB, BACKFILL_JOB, REVOKE_JOB, RESTAMP_JOB, REVERIFY_ALL_JOB)


def gpg_view(payload: GpgKeyAdded) -> dict[str, Any]:
    """The key as GitHub shows it, e-mails not marked (the reader marks them from the
    owner's account as it is then)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        view = parse_gpg_key(
            payload.armored_public_key,
            key_store_id=payload.id,
            owner_emails=(),
            name=payload.name,
        )
    converted: dict[str, Any] = msgspec.to_builtins(view)
    return converted


@dataclass(eq=False)
class SignaturesProjection:
    name: str = "signatures"
    schema: str = store.SCHEMA
    subjects: Sequence[str] | None = (*SUBJECTS, VERIFIED_SUBJECT)
    tables: Sequence[str] = field(default=store.PROJECTION_TABLES)

    async def apply(self, conn: asyncpg.Connection, events: Sequence[Event]) -> None:
        for event in events:
            await self._apply(conn, event)

    async def _apply(self, conn: asyncpg.Connection, event: Event) -> None:
        payload, seq = event.payload, event.sequence
        if isinstance(payload, CommitVerified):
            await store.upsert_verification(
                conn,
                repo=payload.repo,
                oid=payload.commit,
                verified=payload.verified,
                reason=payload.reason,
                key_id=payload.key_id,
                key_store_id=payload.key_store_id,
                signer=payload.signer,
                signature_kind=payload.signature_kind,
                # A revoked key's rows read as not stamped.
                verified_at=None if payload.reason == "unsigned" else payload.verified_at,
                event_id=event.id,
            )
            return
        if isinstance(payload, UserCreated):
            await store.upsert_user(conn, payload.login, payload.name)
            for email in payload.emails:
                await store.upsert_email(conn, payload.login, email.email, verified=email.verified)
        elif isinstance(payload, UserEmailAdded):
            if await store.upsert_email(
                conn, payload.login, payload.email, verified=payload.verified
            ):
                await self._enqueue(conn, event, RESTAMP_JOB, {"login": payload.login})
        elif isinstance(payload, UserEmailVerified):
            if await store.verify_email(conn, payload.login, payload.email):
                await self._enqueue(conn, event, RESTAMP_JOB, {"login": payload.login})
        elif isinstance(payload, GpgKeyAdded):
            key_ids = [payload.key_id, *payload.subkey_ids]
            if await store.insert_gpg_key(
                conn,
                key_store_id=payload.id,
                login=payload.login,
                key_id=payload.key_id,
                key_ids=key_ids,
                name=payload.name,
                armored=payload.armored_public_key,
                view=gpg_view(payload),
                added_at=payload.added_at,
            ):
                await self._enqueue(
                    conn, event, BACKFILL_JOB, {"key_store_id": payload.id, "key_ids": key_ids}
                )
        elif isinstance(payload, SshKeyAdded):
            if await store.insert_ssh_key(
                conn,
                key_store_id=payload.id,
                login=payload.login,
                title=payload.title,
                key=payload.key,
                fingerprint=payload.fingerprint,
                added_at=payload.added_at,
            ):
                await self._enqueue(
                    conn,
                    event,
                    BACKFILL_JOB,
                    {"key_store_id": payload.id, "key_ids": [payload.fingerprint]},
                )
        elif isinstance(payload, GpgKeyRevoked | SshKeyRevoked):
            table = "gpg_keys" if isinstance(payload, GpgKeyRevoked) else "ssh_keys"
            if await store.revoke_key(conn, table, payload.id, at=event.envelope.occurred_at):
                await self._enqueue(conn, event, REVOKE_JOB, {"key_store_id": payload.id})
        else:
            return
        await store.bump_key_set(conn, seq)

    async def _enqueue(
        self, conn: asyncpg.Connection, event: Event, kind: str, payload: dict[str, Any]
    ) -> None:
        await jobs.enqueue(
            conn,
            store.JOBS_TABLE,
            job_id=f"{kind}:{event.id}",
            kind=kind,
            payload={**payload, "version": event.sequence},
            sequence=event.sequence,
        )
