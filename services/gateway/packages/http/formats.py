"""A repository answers only its own protocol: a pypi repository under ``/pypi/``, a
generic one under ``/generic/`` (400 ``repository_format_mismatch`` otherwise)."""

from __future__ import annotations

from contracts.events.registry import RegistryFormat
from contracts.rpc import registry as rpc
from services.gateway.deps import GatewayDeps
from services.gateway.packages.http.access import ask_scanner
from services.gateway.routing import RequestContext
from shared.errors import BadRequest


class RepositoryFormatMismatch(BadRequest):
    code, title = "repository_format_mismatch", "The repository holds another format"


def require_format(repository: rpc.Repository, wanted: RegistryFormat) -> None:
    if repository.format != wanted:
        raise RepositoryFormatMismatch(
            f"repository {repository.slug!r} is a {repository.format} repository: use "
            f"/{repository.format}/… to reach it",
            extra={"format": repository.format},
        )


async def writable_repository(
    ctx: RequestContext, deps: GatewayDeps, ref: rpc.RepositoryRef, wanted: RegistryFormat
) -> rpc.Repository:
    """The repository an upload goes to, checked before a byte of the upload is read (a
    missing repository or another format is refused at once, not after 2 GiB)."""
    repository = await ask_scanner(ctx, deps, rpc.REPOSITORY_GET, ref, rpc.Repository)
    require_format(repository, wanted)
    return repository
