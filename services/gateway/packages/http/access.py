"""Who calls a package route, and which repository it names.

Credentials are optional on reads: a public repository answers anyone, a private one asks
for credentials with ``401`` + ``WWW-Authenticate: Basic realm="gatehouse"`` (pip and twine
then send the token from the index URL, ``.netrc`` or the keyring). An anonymous caller is
told exactly that for a repository that does not exist, so private repositories cannot be
discovered by probing. A known caller gets 404 for what it may not see (another project,
for a project-scoped key), as on the JSON API.

Writes (uploads, generic PUT and DELETE) need ``OPERATOR`` or ``ADMIN`` — the roles that
already publish things (promotions, scans) — and, for a project-scoped key (every
service-account token), the repository's own project.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TypeVar

import msgspec
from aiohttp import web

from contracts.rpc import registry as rpc
from services.gateway.deps import GatewayDeps
from services.gateway.dispatch import authenticate_token, client_address
from services.gateway.domain.access import require_roles
from services.gateway.domain.errors import ProjectArchived
from services.gateway.packages.domain.credentials import BadCredentials, token_of
from services.gateway.packages.http.projects import project_refs
from services.gateway.ratelimiter import RateLimiter
from services.gateway.routing import RequestContext
from shared.errors import GatehouseError, NotFound, Unauthorized
from shared.http import request_id_of
from shared.rpc import call

WRITE_ROLES: frozenset[str] = frozenset({"OPERATOR", "ADMIN"})
_LIMITER_KEY = "gateway.package_limiter"
# contracts.events.registry.RepoSlug; a project is named by its id or slug (printable ASCII).
_SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_PROJECT_REF = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
Resp = TypeVar("Resp", bound=msgspec.Struct)


class RepositoryNotFound(NotFound):
    code, title = "repository_not_found", "No such repository"


def need_credentials() -> BadCredentials:
    return BadCredentials(
        "this repository needs credentials: username __token__, password a Gatehouse token",
        code="unauthorized",
    )


async def caller(request: web.Request, deps: GatewayDeps, *, required: bool) -> RequestContext:
    """The request's context with its principal (None: anonymous), rate-limited per key,
    or per client address when anonymous (``artifact_rate_limit``)."""
    ctx = RequestContext(request=request, request_id=request_id_of(request), runtime=deps.runtime)
    token = token_of(request.headers.get("Authorization"))
    if token is None:
        if required:
            raise BadCredentials("authentication required: username __token__, password a token")
        package_limiter(deps).check(f"ip:{client_address(request)}")
        return ctx
    try:
        ctx.principal = await authenticate_token(token, request, deps)
    except Unauthorized as exc:
        # The same refusal, with the challenge package clients answer (Basic, not Bearer).
        raise BadCredentials(exc.detail, code=exc.code) from None
    package_limiter(deps).check(f"key:{ctx.principal.key_id}")
    return ctx


def package_limiter(deps: GatewayDeps) -> RateLimiter:
    """The package routes' own limiter (per key or client address): package clients ask
    for many files in a row, the JSON API's rates would throttle every ``pip install``."""
    found = deps.runtime.state.get(_LIMITER_KEY)
    if not isinstance(found, RateLimiter):
        settings = deps.settings
        found = deps.runtime.state[_LIMITER_KEY] = RateLimiter(
            rate=settings.artifact_rate_limit, burst=settings.artifact_rate_limit_burst
        )
    return found


def require_writer(ctx: RequestContext) -> None:
    if ctx.principal is None:
        raise need_credentials()
    require_roles(ctx.principal.roles, WRITE_ROLES)


async def repository_ref(
    ctx: RequestContext, deps: GatewayDeps, *, for_write: bool = False
) -> rpc.RepositoryRef:
    """The repository the path names, by its project's id and its slug."""
    project_ref = ctx.request.match_info["project"]
    slug = ctx.request.match_info["repo"]
    if not _SLUG.match(slug) or not _PROJECT_REF.match(project_ref):
        # Nothing could be named so (a NUL, a line break): not worth a lookup.
        raise hidden(ctx, RepositoryNotFound(f"no repository {project_ref[:100]!r}/{slug[:100]!r}"))
    project = await project_refs(deps).find(deps, project_ref)
    scope = ctx.principal.project_id if ctx.principal else None
    if project is None or (scope is not None and scope != project.id):
        raise hidden(ctx, RepositoryNotFound(f"no repository {project_ref}/{slug}"))
    if for_write and project.archived:
        raise ProjectArchived(f"project {project.slug!r} is archived")
    return rpc.RepositoryRef(project_id=project.id, slug=slug)


def hidden(ctx: RequestContext, error: GatehouseError) -> GatehouseError:
    """What an anonymous caller is told instead of "not found": to authenticate."""
    return need_credentials() if ctx.principal is None else error


def require_visible(ctx: RequestContext, repository: rpc.Repository) -> None:
    if ctx.principal is None and repository.visibility != "public":
        raise need_credentials()


async def ask_scanner(
    ctx: RequestContext,
    deps: GatewayDeps,
    operation: str,
    request: msgspec.Struct,
    response_type: type[Resp],
) -> Resp:
    """``operation`` of the scanner (which owns artifact metadata) for this caller."""
    return await call(
        deps.runtime.bus,
        rpc.SERVICE,
        operation,
        request,
        response_type,
        ctx=ctx.call_context(),
        timeout=deps.settings.rpc_timeout_seconds,
    )


async def anonymous_safe(
    ctx: RequestContext,
    deps: GatewayDeps,
    ref: rpc.RepositoryRef,
    run: Callable[[], Awaitable[Resp]],
) -> Resp:
    """``run()``, but an anonymous caller whose request names a missing or private
    repository is asked for credentials instead of learning which it is."""
    try:
        return await run()
    except GatehouseError as exc:
        if ctx.principal is not None or exc.status != 404:
            raise
        if exc.code == RepositoryNotFound.code:
            raise need_credentials() from None
        try:
            repository = await ask_scanner(ctx, deps, rpc.REPOSITORY_GET, ref, rpc.Repository)
        except GatehouseError as lookup:
            if lookup.status == 404:
                raise need_credentials() from None
            raise
        require_visible(ctx, repository)
        raise
