"""The route table: every module of this package exports ``ROUTES: list[Route]``.

:func:`collect_routes` imports them all, so a module added here is served, documented in
OpenAPI and covered by the auth tests without touching anything else.
"""

from __future__ import annotations

import importlib
import pkgutil

from services.gateway.routing import Route


def collect_routes() -> list[Route]:
    routes: list[Route] = []
    seen: dict[tuple[str, str], str] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):  # helpers shared by route modules
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if not hasattr(module, "ROUTES"):
            raise ValueError(f"{module.__name__} must export ROUTES: list[Route]")
        for route in module.ROUTES:
            where = (route.method, route.path)
            if where in seen:
                raise ValueError(
                    f"{route.method} {route.path} is declared by both {seen[where]} and {info.name}"
                )
            seen[where] = info.name
            routes.append(route)
    return routes
