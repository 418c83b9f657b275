"""Wiring of the release-decision service: decisions first (the evidence projection, the
policy and ``release.decided``), then release candidates and deployments, the GitHub and
GitLab integration, and the signed attestations with their keys, which read decisions (the
badge is the gateway's: ``services/gateway/badge.py``)."""

from __future__ import annotations

from pathlib import Path

from services.release_decision.candidates import wiring as candidates
from services.release_decision.decisions import wiring as decisions
from services.release_decision.scm import wiring as scm
from services.release_decision.trust import wiring as trust
from shared.service import Runtime, ServiceDefinition


async def setup(runtime: Runtime) -> None:
    await decisions.setup(runtime)
    await candidates.setup(runtime)
    await scm.setup(runtime)
    await trust.setup(runtime)


DEFINITION = ServiceDefinition(
    name="release-decision",
    schema="release_decision",
    migrations_dir=Path(__file__).parent / "migrations",
    description="release decisions, promotions, release candidates and deployments",
    setup=setup,
    # The attestation signing key generated on first start, and the public halves of keys
    # read from a file: no event carries them.
    unreplayable_tables=("file_keys", "signing_keys"),
)
