"""``svc.scanner.license_policy_*`` and ``license_waiver_*``: the license policy and waivers.

Commands serialise on their aggregate (the policy's scope, the waiver) with an advisory
lock, check ``If-Match`` against the version, validate, publish, and answer once the
licensing projection has applied the event (read-your-writes). The re-evaluation of the
snapshots a change affects runs after the answer, as jobs (``relicense.py``).
"""

from __future__ import annotations

import datetime as dt
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import asyncpg

from contracts.envelope import EventPayload
from contracts.events.licensing import (
    WAIVER_IDS_MAX,
    LicenseWaiverGranted,
    LicenseWaiverRevoked,
    PolicyChanged,
)
from contracts.ids import new_id
from contracts.rpc.scanner_licensing import (
    LicensePolicyView,
    PolicyDeleteRequest,
    PolicyGetRequest,
    PolicyPutRequest,
    WaiverGrantRequest,
    WaiverListRequest,
    WaiverPage,
    WaiverRef,
    WaiverRevokeRequest,
    WaiverView,
)
from services.scanner.domain.licenses import parse_license_text
from services.scanner.domain.purls import InvalidPurl, parse_purl
from services.scanner.licensing import store
from services.scanner.licensing.expiry import WaiverExpiry
from services.scanner.licensing.policy import (
    DEFAULT_ORG_DOCUMENT,
    ORG_SCOPE,
    canonical_document,
    check_if_match,
    policy_id,
    scope_of,
)
from shared.bus import Bus
from shared.commands import advisory_locked, command_once, publish_visible
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.pagination import decode_cursor, encode_cursor
from shared.projection import ProjectionRunner
from shared.rpc import CallContext
from shared.settings import Settings


class WaiverNotFound(NotFound):
    code, title = "waiver_not_found", "No such waiver"


class TooManyWaivers(Conflict):
    code, title = "too_many_waivers", "The project has too many active waivers"


def _invalid(field: str, message: str, *, code: str = "validation_failed") -> ValidationFailed:
    return ValidationFailed(
        f"{field}: {message}",
        code=code,
        extra={"errors": [{"field": field, "message": message, "in": "body"}]},
    )


@dataclass
class LicensingHandlers:
    pool: asyncpg.Pool
    runner: ProjectionRunner
    settings: Settings
    bus: Bus
    expiry: WaiverExpiry

    # ---- policies ---------------------------------------------------------------------------
    async def policy_get(self, request: PolicyGetRequest, _ctx: CallContext) -> LicensePolicyView:
        return await self._policy_view(self.pool, request.project_id)

    async def policy_put(self, request: PolicyPutRequest, ctx: CallContext) -> LicensePolicyView:
        document = canonical_document(request.document, org=request.project_id is None)
        scope = scope_of(request.project_id)
        async with self._locked(f"license-policy:{scope}") as conn:
            current = await store.policy_row(conn, scope)
            version = current.version if current else 0
            check_if_match(request.if_match, version)
            if current is None or current.document != document:
                await self._emit(
                    PolicyChanged(
                        policy_id=policy_id(request.project_id),
                        scope="org" if request.project_id is None else "project",
                        project_id=request.project_id,
                        version=version + 1,
                        document=document,
                    ),
                    aggregate=f"policy:{policy_id(request.project_id)}",
                    ctx=ctx,
                )
        return await self._policy_view(self.pool, request.project_id)

    async def policy_delete(
        self, request: PolicyDeleteRequest, ctx: CallContext
    ) -> LicensePolicyView:
        scope = scope_of(request.project_id)
        async with self._locked(f"license-policy:{scope}") as conn:
            current = await store.policy_row(conn, scope)
            version = current.version if current else 0
            check_if_match(request.if_match, version)
            if current is not None and current.document is not None:
                await self._emit(
                    PolicyChanged(
                        policy_id=policy_id(request.project_id),
                        scope="project",
                        project_id=request.project_id,
                        version=version + 1,
                        document=None,
                    ),
                    aggregate=f"policy:{policy_id(request.project_id)}",
                    ctx=ctx,
                )
        return await self._policy_view(self.pool, request.project_id)

    async def _policy_view(self, db: store.Queryable, project_id: str | None) -> LicensePolicyView:
        org = await store.policy_row(db, ORG_SCOPE)
        org_document = org.document if org and org.document else DEFAULT_ORG_DOCUMENT
        if project_id is None:
            return LicensePolicyView(
                scope="org",
                version=org.version if org else 0,
                document=org_document,
                effective=org_document,
                org_version=org.version if org else 0,
                updated_at=org.updated_at if org else None,
                updated_by=org.updated_by if org else None,
            )
        own = await store.policy_row(db, scope_of(project_id))
        context = await store.current_context(db, project_id, now=dt.datetime.now(dt.UTC))
        return LicensePolicyView(
            scope="project",
            project_id=project_id,
            version=own.version if own else 0,
            document=own.document if own else None,
            effective=context.effective_document(),
            org_version=org.version if org else 0,
            updated_at=own.updated_at if own else None,
            updated_by=own.updated_by if own else None,
        )

    # ---- waivers ----------------------------------------------------------------------------
    async def waiver_grant(self, request: WaiverGrantRequest, ctx: CallContext) -> WaiverView:
        return await command_once(
            ctx,
            bus=self.bus,
            runner=self.runner,
            settings=self.settings,
            first=lambda: self._grant(request, ctx),
            again=lambda applied: self._waiver(applied.aggregate_id, request.project_id),
        )

    async def _grant(self, request: WaiverGrantRequest, ctx: CallContext) -> WaiverView:
        body, now = request.body, dt.datetime.now(dt.UTC)
        license_text = " ".join(body.license.split())
        if parse_license_text(license_text) is None:
            raise _invalid("$.license", "names no license (empty, NONE or NOASSERTION)")
        purl = body.purl.strip() if body.purl else None
        if purl is not None:
            try:
                parse_purl(purl)
            except InvalidPurl as exc:
                raise _invalid("$.purl", f"not a package URL: {exc}", code="invalid_purl") from None
        if body.expires_at <= now:
            raise _invalid("$.expires_at", "is not in the future")
        waiver_id = new_id()
        async with self._locked(f"license-waivers:{request.project_id}") as conn:
            active = await store.active_waivers(conn, request.project_id, at=now)
            if len(active) >= WAIVER_IDS_MAX:
                raise TooManyWaivers(
                    f"the project has {len(active)} active waivers, the most it may have; "
                    "revoke some, or list the license in the project's policy"
                )
            await self._emit(
                LicenseWaiverGranted(
                    waiver_id=waiver_id,
                    project_id=request.project_id,
                    license=license_text,
                    purl=purl,
                    reason=body.reason,
                    expires_at=body.expires_at.astimezone(dt.UTC),
                ),
                aggregate=f"license-waiver:{waiver_id}",
                ctx=ctx,
            )
        self.expiry.wake()
        return await self._waiver(waiver_id, request.project_id)

    async def waiver_revoke(self, request: WaiverRevokeRequest, ctx: CallContext) -> WaiverView:
        async with self._locked(f"license-waiver:{request.waiver_id}") as conn:
            found = await store.waiver_row(conn, request.waiver_id)
            if found is None or found.project_id != request.project_id:
                raise WaiverNotFound(f"no waiver {request.waiver_id!r} in this project")
            if found.status(dt.datetime.now(dt.UTC)) == "active":
                await self._emit(
                    LicenseWaiverRevoked(
                        waiver_id=found.id,
                        project_id=found.project_id,
                        license=found.license,
                        purl=found.purl,
                        reason=found.reason,
                        expires_at=found.expires_at,
                        revoke_reason=request.reason,
                    ),
                    aggregate=f"license-waiver:{found.id}",
                    ctx=ctx,
                )
        return await self._waiver(request.waiver_id, request.project_id)

    async def waiver_list(self, request: WaiverListRequest, _ctx: CallContext) -> WaiverPage:
        query, now = request.query, dt.datetime.now(dt.UTC)
        after = int(decode_cursor(query.cursor, kinds=(int,))[0]) if query.cursor else None
        rows = await store.list_waivers(
            self.pool,
            request.project_id,
            statuses=query.status,
            now=now,
            after=after,
            limit=query.limit + 1,
        )
        page = rows[: query.limit]
        cursor = encode_cursor([page[-1].granted_seq]) if len(rows) > query.limit else None
        return WaiverPage(items=[waiver_view(row, now=now) for row in page], next_cursor=cursor)

    async def waiver_get(self, request: WaiverRef, _ctx: CallContext) -> WaiverView:
        return await self._waiver(request.waiver_id, request.project_id)

    async def _waiver(self, waiver_id: str, project_id: str) -> WaiverView:
        found = await store.waiver_row(self.pool, waiver_id)
        if found is None or found.project_id != project_id:
            raise WaiverNotFound(f"no waiver {waiver_id!r} in this project")
        return waiver_view(found, now=dt.datetime.now(dt.UTC))

    # ---- helpers ----------------------------------------------------------------------------
    async def _emit(self, payload: EventPayload, *, aggregate: str, ctx: CallContext) -> int:
        return await publish_visible(
            self.bus, self.runner, payload, aggregate=aggregate, ctx=ctx, settings=self.settings
        )

    def _locked(self, name: str) -> AbstractAsyncContextManager[asyncpg.Connection]:
        return advisory_locked(self.pool, name)


def waiver_view(row: store.WaiverRow, *, now: dt.datetime) -> WaiverView:
    return WaiverView(
        id=row.id,
        project_id=row.project_id,
        license=row.license,
        purl=row.purl,
        reason=row.reason,
        expires_at=row.expires_at,
        status=row.status(now),  # type: ignore[arg-type]
        granted_at=row.granted_at,
        granted_by=row.granted_by,
        revoked_at=row.revoked_at,
        revoked_by=row.revoked_by,
        revoke_reason=row.revoke_reason,
    )
