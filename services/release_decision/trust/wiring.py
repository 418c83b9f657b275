"""Registers the trust part on the release-decision runtime: the signing key (from
``settings.signing_key_file``, else generated once and kept in ``signing_keys``) and
``svc.release-decision.attestation_get`` / ``trust_keys``. Reads decisions through the
decisions part's queries, so it is set up after it."""

from __future__ import annotations

from pathlib import Path

from contracts.rpc import trust as rpc
from services.release_decision.trust import keys
from services.release_decision.trust.handlers import TrustHandlers
from shared.service import Runtime

HANDLERS_KEY = "trust.handlers"


async def setup(runtime: Runtime) -> None:
    # A configured file is read now: a bad one stops the start with a clear message.
    path = runtime.settings.signing_key_file
    from_file = keys.load_key_file(Path(path)) if path else None
    # Loaded before the endpoints are registered (setup runs before anything answers), so
    # no request ever meets a service without its key.
    key = (
        await keys.remember_file_key(runtime.pool, from_file)
        if from_file
        else await keys.generated_key(runtime.pool)
    )
    handlers = TrustHandlers(pool=runtime.pool, key=key)
    runtime.state[HANDLERS_KEY] = handlers
    runtime.rpc.add(rpc.ATTESTATION_GET, rpc.AttestationRequest, handlers.attestation_get)
    runtime.rpc.add(rpc.KEYS_GET, rpc.KeysRequest, handlers.keys_get)
