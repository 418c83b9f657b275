"""Every Gatehouse service by name, loaded lazily so that no service is imported by accident."""

from __future__ import annotations

import importlib

from shared.service import ServiceDefinition

# Order matters for `gatehouse up`: the owners of events first, the gateway (the edge) last.
SERVICES: dict[str, str] = {
    "audit": "services.audit.app",
    "scanner": "services.scanner.app",
    "signature-verifier": "services.signature_verifier.app",
    "release-decision": "services.release_decision.app",
    "webhook-fanout": "services.webhook_fanout.app",
    "gateway": "services.gateway.app",
}


def definition(name: str) -> ServiceDefinition:
    try:
        module = SERVICES[name]
    except KeyError:
        raise KeyError(f"unknown service {name!r}; known: {', '.join(SERVICES)}") from None
    found: ServiceDefinition = importlib.import_module(module).DEFINITION
    return found
