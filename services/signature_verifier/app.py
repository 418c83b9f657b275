"""Wiring of the signature-verifier service: git mirrors (configured, fetched, their new
commits announced), signing keys and users (the key store), the verification of commit
signatures (cache, backfills) and the commits API that reads mirrors. Each part registers
its own projections, workers and request/reply endpoints."""

from __future__ import annotations

from pathlib import Path

from services.signature_verifier.commits import wiring as commits
from services.signature_verifier.mirrors import wiring as mirrors
from services.signature_verifier.signatures import wiring as signatures
from shared.service import Runtime, ServiceDefinition


async def setup(runtime: Runtime) -> None:
    await signatures.setup(runtime)
    await mirrors.setup(runtime)
    await commits.setup(runtime)


DEFINITION = ServiceDefinition(
    name="signature-verifier",
    schema="signature_verifier",
    migrations_dir=Path(__file__).parent / "migrations",
    description="git repositories, GPG and SSH keys and commit signature verification",
    setup=setup,
    # The fetcher's record of how fetches went, like the mirrors on disk, is not rebuilt by
    # a replay.
    unreplayable_tables=(
        "mirror_status",
        # The index of signed commits (rebuilt from the mirrors by `gatehouse signatures
        # backfill-all`) and the verification work and its progress.
        "signed_commits",
        "indexed_repos",
        "signature_jobs",
        "key_backfills",
        "reverify_runs",
    ),
)
