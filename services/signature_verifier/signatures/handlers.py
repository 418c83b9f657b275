"""``svc.signature-verifier.gpg_key_*`` and ``ssh_key_*``: users' signing keys.

An upload is bounded before anything parses it (the armour's length, then ``keys.py``'s
header walk before pgpy), parsed off the event loop, refused with a stable code
(``KeyRefused``), checked against every uploaded key under one advisory lock (two uploads
of the same key, by anyone, cannot both pass), given an id from ``key_store_ids``,
published, and answered once the projection has applied it. With an Idempotency-Key a
retried upload answers the first attempt's key and publishes nothing (``command_once``).
The re-verification the key causes runs afterwards, as a job; its progress is on the key.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import warnings
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec

from contracts.events.signatures import (
    ARMORED_KEY_MAX_CHARS,
    SSH_KEY_MAX_CHARS,
    GpgKeyAdded,
    GpgKeyRevoked,
    SshKeyAdded,
    SshKeyRevoked,
)
from contracts.rpc.signatures import (
    Backfill,
    GpgKey,
    GpgKeyAddRequest,
    GpgKeysPage,
    KeyRequest,
    KeysListRequest,
    SshKeyAddRequest,
    SshKeysPage,
    SshSigningKey,
)
from services.signature_verifier.domain.keys import (
    GpgKeyView,
    KeyRefused,
    gpg_key_ids,
    parse_gpg_key,
    parse_ssh_key,
    refuse_duplicate,
)
from services.signature_verifier.signatures import store
from shared.bus import Bus
from shared.commands import advisory_locked, command_once, publish_visible
from shared.errors import NotFound, PayloadTooLarge, ValidationFailed
from shared.projection import ProjectionRunner
from shared.rpc import CallContext
from shared.settings import Settings

# Uploads are rare: one lock for every key makes "a key is uploaded once, by anyone" hold.
KEYS_LOCK = "signature-verifier:signing-keys"


class UserNotFound(NotFound):
    code, title = "user_not_found", "No such user"


class KeyNotFound(NotFound):
    code, title = "key_not_found", "No such key"


class KeyTooLarge(PayloadTooLarge):
    code, title = "key_too_large", "The key is too large"


def refused(exc: KeyRefused, field: str) -> ValidationFailed:
    return ValidationFailed(
        exc.detail,
        code=exc.code,
        title="The key was refused",
        extra={"errors": [{"field": field, "message": exc.detail, "in": "body"}]},
    )


def _check_text(text: str, *, limit: int, field: str) -> None:
    if len(text) > limit:
        raise KeyTooLarge(
            f"{field}: {len(text)} characters, at most {limit}",
            extra={"errors": [{"field": field, "message": f"at most {limit} characters"}]},
        )
    if "\x00" in text:
        raise refused(KeyRefused("malformed_key", "the key contains a NUL character"), field)


def _timestamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class KeyHandlers:
    pool: asyncpg.Pool
    bus: Bus
    runner: ProjectionRunner
    settings: Settings

    # ---- OpenPGP ----------------------------------------------------------------------------
    async def gpg_add(self, request: GpgKeyAddRequest, ctx: CallContext) -> GpgKey:
        _check_text(
            request.key.armored_public_key,
            limit=ARMORED_KEY_MAX_CHARS,
            field="$.armored_public_key",
        )
        await self._user(request.login)
        return await command_once(
            ctx,
            bus=self.bus,
            runner=self.runner,
            settings=self.settings,
            first=lambda: self._gpg_add(request, ctx),
            again=lambda applied: self._gpg(int(applied.aggregate_id)),
        )

    async def _gpg_add(self, request: GpgKeyAddRequest, ctx: CallContext) -> GpgKey:
        armored = request.key.armored_public_key
        try:
            view = await asyncio.to_thread(_parse_gpg, armored, request.key.name)
        except KeyRefused as exc:
            raise refused(exc, "$.armored_public_key") from None
        ids = gpg_key_ids(view)
        async with advisory_locked(self.pool, KEYS_LOCK) as conn:
            try:
                refuse_duplicate(ids, existing=await store.uploaded_key_ids(conn))
            except KeyRefused as exc:
                raise refused(exc, "$.armored_public_key") from None
            key_store_id = await _next_key_store_id(conn)
            await publish_visible(
                self.bus,
                self.runner,
                GpgKeyAdded(
                    id=key_store_id,
                    login=request.login,
                    key_id=view.key_id,
                    subkey_ids=list(ids[1:]),
                    name=request.key.name,
                    armored_public_key=armored,
                    added_at=dt.datetime.now(dt.UTC),
                ),
                aggregate=f"gpgkey:{key_store_id}",
                ctx=ctx,
                settings=self.settings,
            )
        return await self._gpg(key_store_id)

    async def gpg_list(self, request: KeysListRequest, _ctx: CallContext) -> GpgKeysPage:
        await self._user(request.login)
        offset = (request.page - 1) * request.per_page
        rows = await store.gpg_key_page(
            self.pool, request.login, offset=offset, limit=request.per_page + 1
        )
        items = [await self._gpg_of(row) for row in rows[: request.per_page]]
        return GpgKeysPage(items=items, has_next=len(rows) > request.per_page)

    async def gpg_get(self, request: KeyRequest, _ctx: CallContext) -> GpgKey:
        return await self._gpg_of(await self._gpg_row(request))

    async def gpg_delete(self, request: KeyRequest, ctx: CallContext) -> GpgKey:
        async with advisory_locked(self.pool, KEYS_LOCK):
            row = await self._gpg_row(request)
            await publish_visible(
                self.bus,
                self.runner,
                GpgKeyRevoked(id=row["id"], login=row["login"], key_id=row["view"]["key_id"]),
                aggregate=f"gpgkey:{row['id']}",
                ctx=ctx,
                settings=self.settings,
            )
        return await self._gpg(row["id"], revoked_ok=True)

    async def _gpg_row(self, request: KeyRequest) -> asyncpg.Record:
        row = await store.gpg_key_row(self.pool, request.id)
        if row is None or row["revoked_at"] is not None or not _owned(row, request.login):
            raise KeyNotFound(f"no GPG key {request.id}" + _of(request.login))
        return row

    async def _gpg(self, key_store_id: int, *, revoked_ok: bool = False) -> GpgKey:
        row = await store.gpg_key_row(self.pool, key_store_id)
        if row is None or (row["revoked_at"] is not None and not revoked_ok):
            raise KeyNotFound(f"no GPG key {key_store_id}")
        return await self._gpg_of(row)

    async def _gpg_of(self, row: asyncpg.Record) -> GpgKey:
        verified = {
            e.email.casefold() for e in await store.emails_of(self.pool, row["login"]) if e.verified
        }
        view: dict[str, Any] = dict(row["view"])
        view["emails"] = [
            {"email": e["email"], "verified": e["email"].casefold() in verified}
            for e in view["emails"]
        ]
        view["revoked"] = bool(view["revoked"] or row["revoked_at"] is not None)
        view["backfill"] = msgspec.to_builtins(await self._backfill(row["id"]))
        return msgspec.convert(view, GpgKey)

    # ---- SSH --------------------------------------------------------------------------------
    async def ssh_add(self, request: SshKeyAddRequest, ctx: CallContext) -> SshSigningKey:
        _check_text(request.key.key, limit=SSH_KEY_MAX_CHARS, field="$.key")
        await self._user(request.login)
        return await command_once(
            ctx,
            bus=self.bus,
            runner=self.runner,
            settings=self.settings,
            first=lambda: self._ssh_add(request, ctx),
            again=lambda applied: self._ssh(int(applied.aggregate_id)),
        )

    async def _ssh_add(self, request: SshKeyAddRequest, ctx: CallContext) -> SshSigningKey:
        now = dt.datetime.now(dt.UTC)
        try:
            view = parse_ssh_key(
                request.key.key, title=request.key.title, key_store_id=0, created_at=now
            )
        except KeyRefused as exc:
            raise refused(exc, "$.key") from None
        async with advisory_locked(self.pool, KEYS_LOCK) as conn:
            try:
                refuse_duplicate([view.fingerprint], existing=await store.uploaded_key_ids(conn))
            except KeyRefused as exc:
                raise refused(exc, "$.key") from None
            key_store_id = await _next_key_store_id(conn)
            await publish_visible(
                self.bus,
                self.runner,
                SshKeyAdded(
                    id=key_store_id,
                    login=request.login,
                    title=request.key.title,
                    key=view.key,
                    fingerprint=view.fingerprint,
                    added_at=now,
                ),
                aggregate=f"sshkey:{key_store_id}",
                ctx=ctx,
                settings=self.settings,
            )
        return await self._ssh(key_store_id)

    async def ssh_list(self, request: KeysListRequest, _ctx: CallContext) -> SshKeysPage:
        await self._user(request.login)
        offset = (request.page - 1) * request.per_page
        rows = await store.ssh_key_page(
            self.pool, request.login, offset=offset, limit=request.per_page + 1
        )
        items = [await self._ssh_of(row) for row in rows[: request.per_page]]
        return SshKeysPage(items=items, has_next=len(rows) > request.per_page)

    async def ssh_get(self, request: KeyRequest, _ctx: CallContext) -> SshSigningKey:
        return await self._ssh_of(await self._ssh_row(request))

    async def ssh_delete(self, request: KeyRequest, ctx: CallContext) -> SshSigningKey:
        async with advisory_locked(self.pool, KEYS_LOCK):
            row = await self._ssh_row(request)
            await publish_visible(
                self.bus,
                self.runner,
                SshKeyRevoked(id=row["id"], login=row["login"], fingerprint=row["fingerprint"]),
                aggregate=f"sshkey:{row['id']}",
                ctx=ctx,
                settings=self.settings,
            )
        return await self._ssh_of(row)

    async def _ssh_row(self, request: KeyRequest) -> asyncpg.Record:
        row = await store.ssh_key_row(self.pool, request.id)
        if row is None or row["revoked_at"] is not None or not _owned(row, request.login):
            raise KeyNotFound(f"no SSH signing key {request.id}" + _of(request.login))
        return row

    async def _ssh(self, key_store_id: int) -> SshSigningKey:
        row = await store.ssh_key_row(self.pool, key_store_id)
        if row is None:
            raise KeyNotFound(f"no SSH signing key {key_store_id}")
        return await self._ssh_of(row)

    async def _ssh_of(self, row: asyncpg.Record) -> SshSigningKey:
        return SshSigningKey(
            id=row["id"],
            key=row["key"],
            title=row["title"],
            created_at=_timestamp(row["added_at"]),
            fingerprint=row["fingerprint"],
            backfill=await self._backfill(row["id"]),
        )

    # ---- shared -----------------------------------------------------------------------------
    async def _user(self, login: str) -> None:
        if not await store.user_exists(self.pool, login):
            raise UserNotFound(f"no user {login!r}")

    async def _backfill(self, key_store_id: int) -> Backfill:
        row = await self.pool.fetchrow(
            "SELECT state, done, total FROM signature_verifier.key_backfills "
            "WHERE key_store_id = $1",
            key_store_id,
        )
        if row is None:
            return Backfill(state="pending", done=0, total=0)
        return Backfill(state=row["state"], done=row["done"], total=row["total"])


def _parse_gpg(armored: str, name: str | None) -> GpgKeyView:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return parse_gpg_key(armored, key_store_id=0, owner_emails=(), name=name)


def _owned(row: asyncpg.Record, login: str | None) -> bool:
    """None: an admin acting on any user's key."""
    return login is None or row["login_key"] == store.key_of(login)


def _of(login: str | None) -> str:
    return f" of {login}" if login is not None else ""


async def _next_key_store_id(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT nextval('signature_verifier.key_store_ids')"))
