"""Every non-public route refuses a missing, malformed, unknown, expired, revoked and
under-privileged token; project-scoped keys see only their project.

The route table is walked (services.gateway.app.collected_routes), so route modules added by
other services are covered as soon as they exist. Path parameters get dummy values: the auth
checks run before any handler.
"""

from __future__ import annotations

import datetime as dt
import re

from contracts.events.identity import ROLES
from services.gateway.app import collected_routes
from services.gateway.routing import Route
from tests.conftest import StartService, wait_until
from tests.integration.test_gateway_support import NO_TOKEN, Api, gateway_api

PROTECTED = [route for route in collected_routes() if route.roles is not None]


# Path parameters a route limits by a pattern (``{name:regex}``) get a value it matches.
_PATTERNED = {
    "{id:repo_[0-9a-f]+}": "repo_" + "0" * 32,
    "{policy_id:ret_[0-9a-f]+}": "ret_" + "0" * 32,
}


def _concrete(route: Route) -> str:
    return re.sub(r"\{[^}]+\}", lambda m: _PATTERNED.get(m.group(0), "dummy"), route.path)


async def _refused(api: Api, route: Route, token: object, *, status: int, code: str) -> None:
    reply = await api.call(route.method, _concrete(route), token=token)
    where = f"{route.method} {route.path}"
    assert reply.status == status, (where, reply.status, reply.body)
    assert reply.headers["Content-Type"].startswith("application/problem+json"), where
    assert reply.code == code, (where, reply.body)
    assert reply.body["request_id"] == reply.headers["X-Request-ID"], where
    if status == 401:
        assert reply.headers["WWW-Authenticate"].startswith("Bearer"), where


async def test_every_protected_route_refuses_bad_tokens(start_service: StartService) -> None:
    assert PROTECTED, "the route table has protected routes"
    async with gateway_api(start_service) as api:
        # Expiry first, so that its wait overlaps the rest of the setup.
        soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1.5)
        _, expired = await api.new_key("ADMIN", expires_at=soon)
        revoked_id, revoked = await api.new_key("ADMIN")
        assert (await api.call("GET", "/api/v1/me", token=revoked)).status == 200
        assert (await api.call("DELETE", f"/api/v1/api-keys/{revoked_id}")).status == 204
        single_role = {role: (await api.new_key(role))[1] for role in ROLES}

        async def has_expired() -> bool:
            reply = await api.call("GET", "/api/v1/me", token=expired)
            return reply.status == 401 and reply.code == "token_expired"

        await wait_until(has_expired, timeout=15)

        unknown = "gh_" + "Z" * 43
        for route in PROTECTED:
            await _refused(api, route, NO_TOKEN, status=401, code="unauthorized")
            for malformed in ("Bearer", "Basic Zm9vOmJhcg==", "Bearer not-a-token"):
                reply = await api.call(
                    route.method,
                    _concrete(route),
                    token=NO_TOKEN,
                    headers={"Authorization": malformed},
                )
                assert reply.status == 401 and reply.code == "unauthorized", (route.path, malformed)
            await _refused(api, route, unknown, status=401, code="unauthorized")
            await _refused(api, route, expired, status=401, code="token_expired")
            await _refused(api, route, revoked, status=401, code="token_revoked")
            lacking = sorted(set(ROLES) - route.roles)
            for role in lacking:
                await _refused(api, route, single_role[role], status=403, code="forbidden")


async def test_revocation_applies_to_the_very_next_request(start_service: StartService) -> None:
    async with gateway_api(start_service) as api:
        for _ in range(5):
            key_id, token = await api.new_key("VIEWER")
            assert (await api.call("GET", "/api/v1/me", token=token)).status == 200
            assert (await api.call("DELETE", f"/api/v1/api-keys/{key_id}")).status == 204
            reply = await api.call("GET", "/api/v1/me", token=token)
            assert (reply.status, reply.code) == (401, "token_revoked")
        # Revoking twice is not an error; an unknown key is a 404 problem.
        assert (await api.call("DELETE", f"/api/v1/api-keys/{key_id}")).status == 204
        missing = await api.call("DELETE", "/api/v1/api-keys/nope")
        assert (missing.status, missing.code) == (404, "not_found")


async def test_keys_are_shown_once_and_listed_without_tokens(start_service: StartService) -> None:
    async with gateway_api(start_service) as api:
        created = await api.call(
            "POST", "/api/v1/api-keys", json={"name": "ci", "roles": ["OPERATOR", "VIEWER"]}
        )
        assert created.status == 201 and created.body["token"].startswith("gh_")
        assert created.headers["Cache-Control"] == "no-store"
        token = created.body["token"]
        me = await api.call("GET", "/api/v1/me", token=token)
        assert me.body["roles"] == ["OPERATOR", "VIEWER"] and me.body["name"] == "ci"
        assert me.body["key_id"] == created.body["id"] and me.body["project_id"] is None
        listing = await api.call("GET", "/api/v1/api-keys")
        assert listing.status == 200
        assert token not in str(listing.body)
        names = {item["name"]: item for item in listing.body["items"]}
        assert names["bootstrap-admin"]["bootstrap"] is True
        assert names["ci"]["prefix"] == token[:10]
        past = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat()
        reply = await api.call(
            "POST",
            "/api/v1/api-keys",
            json={"name": "old", "roles": ["VIEWER"], "expires_at": past},
        )
        assert reply.status == 422 and reply.body["errors"][0]["field"] == "$.expires_at"


async def test_api_key_list_pages_with_cursor(start_service: StartService) -> None:
    async with gateway_api(start_service) as api:
        revoked_id = ""
        for i in range(5):
            key_id, _ = await api.new_key("VIEWER")
            if i == 0:
                revoked_id = key_id
        await api.call("DELETE", f"/api/v1/api-keys/{revoked_id}")
        seen: list[str] = []
        cursor = None
        while True:
            query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
            page = await api.call("GET", f"/api/v1/api-keys{query}")
            assert page.status == 200 and len(page.body["items"]) <= 2
            seen += [item["id"] for item in page.body["items"]]
            cursor = page.body["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == 5 and seen == sorted(seen)  # bootstrap + 4 live keys
        assert revoked_id not in seen
        everything = await api.call("GET", "/api/v1/api-keys?include_revoked=true&limit=500")
        assert revoked_id in [item["id"] for item in everything.body["items"]]
        bad = await api.call("GET", "/api/v1/api-keys?cursor=garbage")
        assert (bad.status, bad.code) == (422, "invalid_cursor")


async def test_project_scoped_keys_see_only_their_project(start_service: StartService) -> None:
    async with gateway_api(start_service) as api:
        mine = await api.new_project("mine")
        other = await api.new_project("other")
        _, scoped = await api.new_key(*ROLES, project="mine")
        me = await api.call("GET", "/api/v1/me", token=scoped)
        assert me.body["project_id"] == mine["id"]

        listing = await api.call("GET", "/api/v1/projects", token=scoped)
        assert [p["slug"] for p in listing.body["items"]] == ["mine"]
        for ref in ("mine", mine["id"]):
            assert (await api.call("GET", f"/api/v1/projects/{ref}", token=scoped)).status == 200
        for ref in ("other", other["id"], "missing"):
            reply = await api.call("GET", f"/api/v1/projects/{ref}", token=scoped)
            assert (reply.status, reply.code) == (404, "not_found")
            patch = await api.call(
                "PATCH", f"/api/v1/projects/{ref}", token=scoped, json={"name": "x"}
            )
            assert patch.status == 404
        patched = await api.call("PATCH", "/api/v1/projects/mine", token=scoped, json={"name": "M"})
        assert patched.status == 200 and patched.body["name"] == "M"

        # Routes that do not name a project are closed to scoped keys unless they filter.
        created = await api.call(
            "POST", "/api/v1/projects", token=scoped, json={"slug": "new-one", "name": "n"}
        )
        assert (created.status, created.code) == (403, "forbidden")
        user = await api.call("GET", "/api/v1/users/someone", token=scoped)
        assert user.status == 403
        # A scoped admin mints keys only for its own project and lists only those.
        unscoped = await api.call(
            "POST", "/api/v1/api-keys", token=scoped, json={"name": "k", "roles": ["VIEWER"]}
        )
        assert unscoped.status == 422
        foreign = await api.call(
            "POST",
            "/api/v1/api-keys",
            token=scoped,
            json={"name": "k", "roles": ["VIEWER"], "project": "other"},
        )
        assert (foreign.status, foreign.code) == (422, "unknown_project")
        own_id, _ = await api.new_key("VIEWER", project="mine", token=scoped)
        keys = await api.call("GET", "/api/v1/api-keys", token=scoped)
        assert {k["project_id"] for k in keys.body["items"]} == {mine["id"]}
        assert own_id in {k["id"] for k in keys.body["items"]}
        bootstrap = next(
            k for k in (await api.call("GET", "/api/v1/api-keys")).body["items"] if k["bootstrap"]
        )
        reply = await api.call("DELETE", f"/api/v1/api-keys/{bootstrap['id']}", token=scoped)
        assert reply.status == 404


async def test_revocation_reaches_every_replica(start_service: StartService) -> None:
    async with gateway_api(start_service) as first:
        second_runtime = await start_service("gateway")
        second = Api(runtime=second_runtime, http=first.http, admin=first.admin)
        key_id, token = await first.new_key("VIEWER")
        # Both replicas have the key cached now.
        for api in (first, second, first, second):
            assert (await api.call("GET", "/api/v1/me", token=token)).status == 200
        assert (await second.call("DELETE", f"/api/v1/api-keys/{key_id}")).status == 204
        reply = await second.call("GET", "/api/v1/me", token=token)
        assert (reply.status, reply.code) == (401, "token_revoked")

        async def refused_by_first() -> bool:
            return (await first.call("GET", "/api/v1/me", token=token)).status == 401

        await wait_until(refused_by_first, timeout=5)
