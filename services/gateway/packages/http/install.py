"""The package protocols' routes, added to the gateway's app beside the JSON route table.

They run behind the same edge middleware (request ids, problem+json, latency metrics) and
the same token lookup and rate limiters as every other route; they are aiohttp routes of
their own because they stream bodies both ways.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from services.gateway.deps import GatewayDeps
from services.gateway.packages.http import generic, pypi
from shared.http import Handler

_PYPI = "/pypi/{project}/{repo}"
# Any path, line breaks included (refused by shared.artifact_paths, not left to a 404).
_GENERIC = r"/generic/{project}/{repo}/{path:[\s\S]*}"

Bound = Callable[[web.Request, GatewayDeps], Awaitable[web.StreamResponse]]


def install_package_routes(app: web.Application, deps: GatewayDeps) -> None:
    def bind(handler: Bound) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            return await handler(request, deps)

        handle.__name__ = handler.__name__
        return handle

    router = app.router
    router.add_get(f"{_PYPI}/simple", pypi.simple_root_redirect)
    router.add_get(f"{_PYPI}/simple/", bind(pypi.simple_index))
    router.add_get(f"{_PYPI}/simple/{{name}}", bind(pypi.simple_project))
    router.add_get(f"{_PYPI}/simple/{{name}}/", bind(pypi.simple_project))
    router.add_get(f"{_PYPI}/files/{{sha256}}/{{filename}}", bind(pypi.download))
    for upload_path in (_PYPI, f"{_PYPI}/", f"{_PYPI}/legacy", f"{_PYPI}/legacy/"):
        router.add_post(upload_path, bind(pypi.upload))
    router.add_put(_GENERIC, bind(generic.put))
    router.add_get(_GENERIC, bind(generic.get))  # and HEAD
    router.add_delete(_GENERIC, bind(generic.delete))
