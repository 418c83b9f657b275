"""Deterministic event ids of the scm part: a redelivered webhook or a re-run job publishes
the same ids, which JetStream drops inside its duplicate window."""

from __future__ import annotations

import uuid

# Fixed forever: changing it would change every id derived from it.
NAMESPACE = uuid.UUID("2f7c7f0e-8a51-5f0b-9d59-4c3a2c1e9b77")


def _uuid5(*parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "\x00".join(parts)))


def delivery_event_id(provider: str, delivery_id: str, index: int) -> str:
    """The id of the ``index``-th event published for a delivery."""
    return _uuid5("delivery", provider, delivery_id, str(index))


def job_event_id(job_id: str, step: str) -> str:
    return _uuid5("scm-job", job_id, step)
