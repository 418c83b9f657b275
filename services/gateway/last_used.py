"""When each service-account token was last used, written at most once a minute per token.

Not an event: one per authenticated request would flood the bus and the audit log. It is the
gateway's own kept state (``service_account_token_usage``), written on the request that
authenticates, paced per process here and across replicas by the write itself.
"""

from __future__ import annotations

import datetime as dt

from services.gateway.adapters.read_model import Queryable
from services.gateway.adapters.service_accounts import record_last_use
from services.gateway.domain.service_accounts import last_use_due
from shared.errors import outage_of
from shared.logging import get_logger

log = get_logger(__name__)

MAX_ENTRIES = 10_000


class LastUseRecorder:
    def __init__(self, *, max_entries: int = MAX_ENTRIES) -> None:
        self._max_entries = max_entries
        # Token id -> the last use this process wrote (or tried to).
        self._written: dict[str, dt.datetime] = {}
        # Writes attempted, for the tests.
        self.writes = 0

    async def used(self, db: Queryable, token_id: str, now: dt.datetime) -> None:
        if not last_use_due(self._written.get(token_id), now):
            return
        if len(self._written) >= self._max_entries:
            self._written.clear()
        # Remembered before writing: while the database is down this costs one attempt a
        # minute per token, not one per request (the key itself may come from the cache).
        self._written[token_id] = now
        self.writes += 1
        try:
            await record_last_use(db, token_id, now)
        except Exception as exc:
            if outage_of(exc) is None:
                raise
            # Last-used is bookkeeping: an outage must not refuse a request the cache allows.
            log.warning("last_use_not_recorded", token_id=token_id, error=type(exc).__name__)
