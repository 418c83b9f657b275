"""OrbitalReg's paths for what exists already: ``/api/admin/license-policies`` (the org
license policy: the same handlers, validation, ETag / If-Match and ``policy.changed``;
ADMIN only) and ``/api/public-config`` with the operator's ``help_url`` and ``banner``."""

from __future__ import annotations

from tests.conftest import StartService
from tests.integration.test_gateway_support import NO_TOKEN, gateway_api
from tests.integration.test_scan_support import scan_api, subject_counts

ADMIN = "/api/admin/license-policies"
ORG = "/api/v1/license-policy"


async def test_license_policies_alias_round_trip_and_roles(start_service: StartService) -> None:
    async with scan_api(start_service) as s:
        fresh = await s.call("GET", ADMIN)
        assert fresh.status == 200 and fresh.headers["ETag"] == '"v0"', fresh.body
        body = {"allowed": ["mit", "Apache-2.0"], "forbidden": ["AGPL-3.0-only"]}
        put = await s.call("PUT", ADMIN, json=body, headers={"If-Match": '"v0"'})
        assert put.status == 200 and put.headers["ETag"] == '"v1"', put.body
        assert put.body["document"]["allowed"] == ["MIT", "Apache-2.0"]
        # One resource under two paths.
        org = await s.call("GET", ORG)
        assert (org.body, org.headers["ETag"]) == (put.body, '"v1"')
        assert (await s.call("GET", ADMIN)).body == put.body
        assert await subject_counts(s.scanner, "policy.changed") == {"policy.changed": 1}

        # The same validation and preconditions, nothing published when refused.
        bad = await s.call("PUT", ADMIN, json={"allowed": ["Not-A-License"]})
        assert bad.status == 422 and bad.code == "license_policy_invalid", bad.body
        assert bad.body["errors"][0]["field"] == "$.allowed[0]"
        stale = await s.call("PUT", ADMIN, json=body, headers={"If-Match": '"v0"'})
        assert stale.status == 412 and stale.body["current_etag"] == '"v1"'
        assert await subject_counts(s.scanner, "policy.changed") == {"policy.changed": 1}

        # ADMIN only (a POLICY_AUTHOR still writes at /api/v1/license-policy).
        _, author = await s.api.new_key("POLICY_AUTHOR")
        _, viewer = await s.api.new_key("VIEWER")
        for token in (author, viewer):
            assert (await s.call("GET", ADMIN, token=token)).status == 403
            refused = await s.call("PUT", ADMIN, json=body, token=token)
            assert refused.status == 403, refused.body
        assert (await s.call("GET", ADMIN, token=NO_TOKEN)).status == 401
        assert (await s.call("PUT", ORG, json={"allowed": ["MIT"]}, token=author)).status == 200
        assert (await s.call("GET", ADMIN)).headers["ETag"] == '"v2"'
        assert await subject_counts(s.scanner, "policy.changed") == {"policy.changed": 2}


async def test_public_config_tells_the_help_url_and_banner(start_service: StartService) -> None:
    async with gateway_api(start_service) as plain:
        config = await plain.call("GET", "/api/public-config", token=NO_TOKEN)
        assert config.status == 200
        assert (config.body["help_url"], config.body["banner"]) == (None, None)
    banner = 'Maintenance Saturday 06:00-08:00 UTC — uploads paused & "read-only"'
    async with gateway_api(
        start_service, help_url="https://help.example.com/gatehouse?from=api", banner=banner
    ) as api:
        config = await api.call("GET", "/api/public-config", token=NO_TOKEN)
        assert config.status == 200
        assert config.body["help_url"] == "https://help.example.com/gatehouse?from=api"
        assert config.body["banner"] == banner
        assert config.body["version"] and "search" in config.body["features"]
