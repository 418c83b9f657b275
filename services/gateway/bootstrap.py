"""The bootstrap admin key: created once, on the first start of the first gateway replica.

Replicas starting together are serialised by an advisory lock, and each first waits until its
read model has applied every identity event already on the stream, so "no bootstrap key yet"
is never a stale answer. The token is never logged: it goes to the operator through
``bootstrap_token_file`` (mode 0600), which ``gatehouse up`` prints once and deletes.
"""

from __future__ import annotations

import os
from pathlib import Path

from contracts.events.identity import ApiKeyCreated
from contracts.ids import new_id
from services.gateway.adapters.read_model import bootstrap_key_exists
from services.gateway.deps import GatewayDeps
from services.gateway.domain.tokens import (
    TOKEN_RANDOM_BYTES,
    display_prefix,
    is_well_formed,
    new_token,
    token_sha256,
)
from shared.db import advisory_key, connect
from shared.errors import GatehouseError
from shared.logging import get_logger

log = get_logger(__name__)

BOOTSTRAP_KEY_NAME = "bootstrap-admin"
_LOCK = advisory_key("gateway:bootstrap")
# Catching up on a long history at start-up may take longer than one request may wait.
CATCH_UP_SECONDS = 120.0


async def ensure_bootstrap_admin(deps: GatewayDeps) -> str | None:
    """Create the bootstrap ADMIN key unless one exists (revoked counts); returns its id."""
    settings = deps.settings
    token = settings.bootstrap_token or new_token(os.urandom(TOKEN_RANDOM_BYTES))
    if not is_well_formed(token):
        raise GatehouseError(
            "GATEHOUSE_BOOTSTRAP_TOKEN must look like gh_ followed by 16-200 letters, digits, "
            "'-' or '_'",
            code="invalid_bootstrap_token",
        )
    conn = await connect(settings.database_url)
    try:
        # Keys are never deleted: one already in the read model settles it without waiting.
        if await bootstrap_key_exists(conn):
            return None
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK)
        subjects = deps.runner.projection.subjects or [">"]
        last = await deps.runtime.bus.last_sequence_of(subjects)
        await deps.writer.visible(
            last, timeout=max(CATCH_UP_SECONDS, settings.read_your_writes_timeout_seconds)
        )
        if await bootstrap_key_exists(conn):
            return None
        key_id = new_id()
        await deps.writer.emit(
            ApiKeyCreated(
                key_id=key_id,
                name=BOOTSTRAP_KEY_NAME,
                prefix=display_prefix(token),
                token_sha256=token_sha256(token),
                roles=["ADMIN"],
                bootstrap=True,
            ),
            aggregate=f"apikey:{key_id}",
            actor="system",
            correlation_id=None,
        )
        log.info("bootstrap_admin_created", key_id=key_id)
        if settings.bootstrap_token_file:
            write_secret_file(Path(settings.bootstrap_token_file), token)
        return key_id
    finally:
        await conn.close()  # ends the session, which releases the lock


def write_secret_file(path: Path, secret: str) -> None:
    """Write ``secret`` readable by this user only; never half-written, never world-readable."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the file may have existed with a wider mode
        os.write(fd, secret.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(partial, path)
