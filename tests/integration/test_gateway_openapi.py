"""The served OpenAPI document, the self-contained docs page and the public config."""

from __future__ import annotations

import re

from services.gateway.app import collected_routes
from services.gateway.openapi import openapi_path
from shared.service import VERSION
from tests.conftest import StartService
from tests.integration.test_gateway_support import NO_TOKEN, gateway_api
from tests.unit.test_gateway_openapi import _refs, _resolve


async def test_openapi_docs_and_public_config_are_public(start_service: StartService) -> None:
    async with gateway_api(start_service) as api:
        reply = await api.call("GET", "/api/openapi.json", token=NO_TOKEN)
        assert reply.status == 200 and reply.headers["Content-Type"].startswith("application/json")
        doc = reply.body
        assert doc["openapi"].startswith("3.1") and doc["info"]["version"] == VERSION
        for route in collected_routes():
            assert route.method.lower() in doc["paths"][openapi_path(route.path)], route.path
        for ref in _refs(doc):
            _resolve(doc, ref)
        # Every success status a route answers is documented, with its body.
        cut = doc["paths"]["/api/releases/{project}/releases/{version}"]["post"]["responses"]
        environment = doc["paths"]["/api/releases/{project}/environments/{env}"]["put"]
        assert {"200", "201"} <= set(cut) and {"200", "201"} <= set(environment["responses"])
        assert cut["200"] == cut["201"]
        cached = await api.call(
            "GET",
            "/api/openapi.json",
            token=NO_TOKEN,
            headers={"If-None-Match": reply.headers["ETag"]},
        )
        assert cached.status == 304

        page = await api.call("GET", "/api/docs", token=NO_TOKEN)
        assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
        html = page.body
        assert "default-src 'none'" in page.headers["Content-Security-Policy"]
        # Self-contained: no script, style or font is loaded from anywhere.
        assert not re.search(r"<(script|link|img)[^>]+(src|href)=", html)
        assert "http://" not in html.replace("http://json-schema.org", "")
        assert "https://" not in html.replace("https://gatehouse.dev/problems", "")
        assert '"/api/v1/projects"' in html and "</script>" in html

        config = await api.call("GET", "/api/public-config", token=NO_TOKEN)
        assert config.status == 200 and config.body["version"] == VERSION
        assert {"api-keys", "projects", "users"} <= set(config.body["features"])
