"""``svc.release-decision.attestation_get`` and ``trust_keys``: the current decision of a
(repo, commit) signed as a DSSE envelope, and the public keys that verify it."""

from __future__ import annotations

import asyncpg

from contracts.rpc.trust import AttestationRequest, DsseEnvelope, KeysRequest, TrustKeys
from services.release_decision.decisions.queries import current_decision
from services.release_decision.trust import keys
from services.release_decision.trust.dsse import attest
from shared.rpc import CallContext


class TrustHandlers:
    def __init__(self, *, pool: asyncpg.Pool, key: keys.SigningKey) -> None:
        self.pool = pool
        self.key = key

    async def attestation_get(self, request: AttestationRequest, ctx: CallContext) -> DsseEnvelope:
        async with self.pool.acquire() as conn:
            view = await current_decision(conn, request.repo, request.commit)
        return attest(view, key=self.key.private, keyid=self.key.keyid)

    async def keys_get(self, request: KeysRequest, ctx: CallContext) -> TrustKeys:
        return TrustKeys(keys=await keys.public_keys(self.pool, self.key))
