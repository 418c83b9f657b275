"""Service accounts and their tokens over the gateway's HTTP API, with real NATS and
PostgreSQL: accounts CRUD, minting, listing and revoking tokens, what a token may do and
where, when it stops working, that its plaintext is shown once and nowhere else, and that
`gatehouse replay gateway` rebuilds the rows."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg

from services.gateway.deps import DEPS_KEY, GatewayDeps
from services.gateway.projection import PROJECTION_TABLES
from shared.settings import Settings
from tests.conftest import StartService, table_digest, wait_until
from tests.integration.test_gateway_replay import _replay_in_subprocess
from tests.integration.test_gateway_support import Api, Reply, gateway_api


def _accounts(project: str) -> str:
    return f"/api/v1/projects/{project}/service_accounts"


async def _new_account(api: Api, project: str, name: str, *roles: str, **kw: Any) -> Reply:
    reply = await api.call(
        "POST", _accounts(project), json={"name": name, "roles": list(roles)}, **kw
    )
    assert reply.status == 201, reply.body
    return reply


async def _mint(api: Api, project: str, account: str, **body: Any) -> Reply:
    reply = await api.call("POST", f"{_accounts(project)}/{account}/tokens", json=body)
    assert reply.status == 201, reply.body
    return reply


async def _stream_bytes(api: Api) -> bytes:
    """Every message on the stream, concatenated (to look for a secret in it)."""
    js, stream = api.runtime.bus.js, api.runtime.bus.stream
    last = await api.runtime.bus.last_sequence()
    chunks = []
    for seq in range(1, last + 1):
        msg = await js.get_msg(stream, seq)
        chunks.append(msg.data or b"")
    return b"\n".join(chunks)


async def test_accounts_are_created_listed_filtered_read_and_deleted(
    start_service: StartService,
) -> None:
    async with gateway_api(start_service) as api:
        web = await api.new_project("web")
        await api.new_project("other")
        created = await api.call(
            "POST",
            _accounts("web"),
            json={"name": "ci", "description": "CI uploads", "roles": ["VIEWER", "OPERATOR"]},
        )
        assert created.status == 201, created.body
        account = created.body
        assert account["id"].startswith("sa_") and len(account["id"]) == 35
        assert account["project_id"] == web["id"] and account["roles"] == ["OPERATOR", "VIEWER"]
        assert account["description"] == "CI uploads" and account["created_by"].startswith(
            "apikey:"
        )
        assert (
            created.headers["Location"]
            == f"/api/v1/projects/{web['id']}/service_accounts/{account['id']}"
        )

        # Names are unique per project; another project may use the same one.
        taken = await api.call("POST", _accounts("web"), json={"name": "ci", "roles": ["VIEWER"]})
        assert (taken.status, taken.code) == (409, "service_account_name_taken"), taken.body
        await _new_account(api, "other", "ci", "VIEWER")
        for bad, field in (
            ({"name": "x", "roles": ["SUPERUSER"]}, "$.roles[0]"),
            ({"name": "x", "roles": []}, "$.roles"),
            ({"name": "Has Spaces", "roles": ["VIEWER"]}, "$.name"),
            ({"name": "sa_" + "0" * 32, "roles": ["VIEWER"]}, "$.name"),
            ({"name": "x", "roles": ["VIEWER"], "extra": 1}, None),
        ):
            reply = await api.call("POST", _accounts("web"), json=bad)
            assert reply.status == 422, (bad, reply.body)
            if field is not None:
                assert reply.body["errors"][0]["field"] == field, reply.body
        missing = await api.call("POST", _accounts("nope"), json={"name": "x", "roles": ["VIEWER"]})
        assert (missing.status, missing.code) == (404, "not_found")

        for name in ("deploy", "backup"):
            await _new_account(api, "web", name, "VIEWER")
        names: list[str] = []
        cursor = None
        while True:
            query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
            page = await api.call("GET", _accounts(web["id"]) + query)
            assert page.status == 200 and len(page.body["items"]) <= 2, page.body
            names += [item["name"] for item in page.body["items"]]
            cursor = page.body["next_cursor"]
            if cursor is None:
                break
        assert names == ["backup", "ci", "deploy"]
        only = await api.call("GET", _accounts("web") + "?name=deploy")
        assert [a["name"] for a in only.body["items"]] == ["deploy"]
        none = await api.call("GET", _accounts("web") + "?name=absent")
        assert none.body == {"items": [], "next_cursor": None}

        for ref in (account["id"], "ci"):
            got = await api.call("GET", f"{_accounts('web')}/{ref}")
            assert got.status == 200 and got.body == account, got.body
        # An account is reached only through its own project.
        wrong = await api.call("GET", f"{_accounts('other')}/{account['id']}")
        assert (wrong.status, wrong.code) == (404, "not_found")

        # Listing takes any role of the project; creating takes ADMIN.
        _, viewer = await api.new_key("VIEWER")
        assert (await api.call("GET", _accounts("web"), token=viewer)).status == 200
        refused = await api.call(
            "POST", _accounts("web"), token=viewer, json={"name": "v", "roles": ["VIEWER"]}
        )
        assert (refused.status, refused.code) == (403, "forbidden")
        # A project-scoped ADMIN creates accounts in its project only.
        _, scoped = await api.new_key("ADMIN", project="web")
        await _new_account(api, "web", "scoped-made", "VIEWER", token=scoped)
        foreign = await api.call(
            "POST", _accounts("other"), token=scoped, json={"name": "s", "roles": ["VIEWER"]}
        )
        assert (foreign.status, foreign.code) == (404, "not_found")

        deleted = await api.call("DELETE", f"{_accounts('web')}/ci")
        assert deleted.status == 204
        for method in ("GET", "DELETE"):
            gone = await api.call(method, f"{_accounts('web')}/{account['id']}")
            assert (gone.status, gone.code) == (404, "not_found"), method
        listing = await api.call("GET", _accounts("web"))
        assert "ci" not in [a["name"] for a in listing.body["items"]]
        # The name is free again, for a new account with a new id.
        again = await _new_account(api, "web", "ci", "VIEWER")
        assert again.body["id"] != account["id"]

        # An archived project takes no new accounts nor tokens; its accounts stay readable.
        assert (await api.call("DELETE", "/api/v1/projects/other")).status == 204
        for path, body in (
            (_accounts("other"), {"name": "late", "roles": ["VIEWER"]}),
            (f"{_accounts('other')}/ci/tokens", {}),
        ):
            reply = await api.call("POST", path, json=body)
            assert (reply.status, reply.code) == (409, "project_archived"), (path, reply.body)
        assert (await api.call("GET", f"{_accounts('other')}/ci")).status == 200


async def test_tokens_act_with_their_roles_in_their_project_until_revoked_or_expired(
    start_service: StartService,
) -> None:
    async with gateway_api(start_service) as api:
        deps: GatewayDeps = api.runtime.state[DEPS_KEY]
        web = await api.new_project("web")
        await api.new_project("other")
        account = (await _new_account(api, "web", "ci", "ADMIN", "VIEWER")).body
        base = f"{_accounts('web')}/{account['id']}"

        # Expiry first, so that its wait overlaps the rest.
        soon = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1.5)).isoformat()
        expiring = (await _mint(api, "web", "ci", name="short", expires_at=soon)).body["token"]
        assert (await api.call("GET", "/api/v1/me", token=expiring)).status == 200

        minted = await _mint(api, "web", "ci", name="uploads", roles=["VIEWER"])
        assert minted.headers["Cache-Control"] == "no-store"
        issued = minted.body
        token = issued["token"]
        assert token.startswith("gsa_") and len(token) == 47
        assert issued["roles"] == ["VIEWER"] and issued["project_id"] == web["id"]
        assert issued["service_account_id"] == account["id"]
        location = f"/api/v1/projects/{web['id']}/service_accounts/{account['id']}"
        assert minted.headers["Location"] == f"{location}/tokens/{issued['id']}"
        by_days = (await _mint(api, "web", "ci", expires_in_days=30)).body
        assert by_days["roles"] == ["ADMIN", "VIEWER"]  # default: all of the account's
        expires = dt.datetime.fromisoformat(by_days["expires_at"])
        assert dt.timedelta(days=29) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(days=30)

        for body, status, code, field in (
            ({"roles": ["OPERATOR"]}, 422, "role_not_allowed", "$.roles"),
            ({"roles": ["ROOT"]}, 422, "validation_failed", "$.roles[0]"),
            (
                {"expires_at": soon, "expires_in_days": 1},
                422,
                "validation_failed",
                "$.expires_in_days",
            ),
            ({"expires_at": "2001-01-01T00:00:00Z"}, 422, "validation_failed", "$.expires_at"),
            ({"expires_in_days": 0}, 422, "validation_failed", "$.expires_in_days"),
        ):
            reply = await api.call("POST", f"{base}/tokens", json=body)
            assert (reply.status, reply.code) == (status, code), (body, reply.body)
            assert reply.body["errors"][0]["field"] == field, reply.body
        unknown = await api.call("POST", f"{_accounts('web')}/nobody/tokens", json={})
        assert (unknown.status, unknown.code) == (404, "not_found")

        # Who the token is: the account, in its project, with the token's roles only.
        me = await api.call("GET", "/api/v1/me", token=token)
        assert me.status == 200, me.body
        assert me.body["actor"] == f"serviceaccount:{account['id']}"
        assert me.body["key_id"] == issued["id"] and me.body["roles"] == ["VIEWER"]
        assert me.body["project_id"] == web["id"] and me.body["service_account_id"] == account["id"]
        assert me.body["name"] == "ci" and me.body["prefix"] == token[:10]
        assert (await api.call("GET", "/api/v1/projects/web", token=token)).status == 200
        listing = await api.call("GET", "/api/v1/projects", token=token)
        assert [p["slug"] for p in listing.body["items"]] == ["web"]
        for path in ("/api/v1/projects/other", _accounts("other")):
            reply = await api.call("GET", path, token=token)
            assert (reply.status, reply.code) == (404, "not_found"), path
        # Its roles only (VIEWER of an ADMIN account), and no route outside a project.
        write = await api.call(
            "POST", _accounts("web"), token=token, json={"name": "x", "roles": ["VIEWER"]}
        )
        assert (write.status, write.code) == (403, "forbidden")
        unscoped = await api.call(
            "POST", "/api/v1/projects", token=by_days["token"], json={"slug": "s", "name": "s"}
        )
        assert (unscoped.status, unscoped.code) == (403, "forbidden")
        # An ADMIN token of the account administers its project, as the account.
        made = await _new_account(api, "web", "made-by-sa", "VIEWER", token=by_days["token"])
        assert made.body["created_by"] == f"serviceaccount:{account['id']}"

        # Listed without the token; the last use is recorded, at most once a minute.
        tokens = (await api.call("GET", f"{base}/tokens")).body["items"]
        assert token not in str(tokens) and by_days["token"] not in str(tokens)
        listed = {t["id"]: t for t in tokens}
        assert listed[issued["id"]]["prefix"] == token[:10]
        assert listed[issued["id"]]["revoked"] is False
        first_use = listed[issued["id"]]["last_used_at"]
        assert first_use is not None
        writes = deps.last_use.writes
        for _ in range(3):
            assert (await api.call("GET", "/api/v1/me", token=token)).status == 200
        assert deps.last_use.writes == writes
        again = (await api.call("GET", f"{base}/tokens")).body["items"]
        assert {t["id"]: t for t in again}[issued["id"]]["last_used_at"] == first_use
        never_used = await _mint(api, "web", "ci")
        listed_new = await api.call("GET", f"{base}/tokens?limit=500")
        fresh = {t["id"]: t for t in listed_new.body["items"]}[never_used.body["id"]]
        assert fresh["last_used_at"] is None
        page = await api.call("GET", f"{base}/tokens?limit=2")
        assert len(page.body["items"]) == 2 and page.body["next_cursor"] is not None

        # Revoked: refused on the very next request; revoking twice is no error.
        assert (await api.call("DELETE", f"{base}/tokens/{issued['id']}")).status == 204
        reply = await api.call("GET", "/api/v1/me", token=token)
        assert (reply.status, reply.code) == (401, "token_revoked")
        assert (await api.call("DELETE", f"{base}/tokens/{issued['id']}")).status == 204
        missing = await api.call("DELETE", f"{base}/tokens/sat_{'0' * 32}")
        assert (missing.status, missing.code) == (404, "not_found")
        revoked = {t["id"]: t for t in (await api.call("GET", f"{base}/tokens")).body["items"]}
        assert revoked[issued["id"]]["revoked"] is True
        assert revoked[issued["id"]]["revoked_at"] is not None

        async def has_expired() -> bool:
            reply = await api.call("GET", "/api/v1/me", token=expiring)
            return reply.status == 401 and reply.code == "token_expired"

        await wait_until(has_expired, timeout=15)

        # Deleting the account revokes every token of it, on the next request.
        survivor = by_days["token"]
        assert (await api.call("GET", "/api/v1/me", token=survivor)).status == 200
        assert (await api.call("DELETE", base)).status == 204
        reply = await api.call("GET", "/api/v1/me", token=survivor)
        assert (reply.status, reply.code) == (401, "token_revoked")
        assert (await api.call("GET", f"{base}/tokens")).status == 404


async def test_the_plaintext_is_shown_once_and_nowhere_else(start_service: StartService) -> None:
    await start_service("audit")
    async with gateway_api(start_service) as api:
        await api.new_project("web")
        account = (await _new_account(api, "web", "ci", "ADMIN")).body
        base = f"{_accounts('web')}/{account['id']}"
        headers = {"Idempotency-Key": "mint-1"}
        first = await api.call("POST", f"{base}/tokens", json={"name": "t"}, headers=headers)
        assert first.status == 201
        token = first.body["token"]
        replay = await api.call("POST", f"{base}/tokens", json={"name": "t"}, headers=headers)
        assert replay.status == 201 and replay.headers["Idempotent-Replayed"] == "true"
        assert replay.body["token"] is None and replay.body["id"] == first.body["id"]
        # The token writes, as the account.
        await _new_account(api, "web", "by-token", "VIEWER", token=token)
        await api.call("DELETE", f"{base}/tokens/{first.body['id']}")

        last = await api.runtime.bus.last_sequence()
        audit = await api.call(
            "GET", f"/api/v1/audit?actor=serviceaccount:{account['id']}&min_sequence={last}"
        )
        assert audit.status == 200, audit.body
        assert [e["type"] for e in audit.body["items"]] == ["serviceaccount.created"]
        everything = await api.call("GET", f"/api/v1/audit?page_size=200&min_sequence={last}")
        types = {e["type"] for e in everything.body["items"]}
        assert {"serviceaccount.token-created", "serviceaccount.token-revoked"} <= types
        assert token not in str(everything.body)
        assert token.encode() not in await _stream_bytes(api)
        listing = await api.call("GET", f"{base}/tokens")
        assert token not in str(listing.body) and token not in str(
            (await api.call("GET", base)).body
        )
        conn = await asyncpg.connect(api.runtime.settings.database_url)
        try:
            for schema in ("gateway", "audit"):
                tables = await conn.fetch(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = $1 AND table_type = 'BASE TABLE'",
                    schema,
                )
                for row in tables:
                    found = await conn.fetchval(
                        f'SELECT count(*) FROM "{schema}"."{row["table_name"]}" t '
                        "WHERE strpos(t::text, $1) > 0",
                        token,
                    )
                    assert found == 0, f"{schema}.{row['table_name']} holds the token"
        finally:
            await conn.close()


async def test_replay_rebuilds_identical_service_account_rows(
    start_service: StartService, settings: Settings
) -> None:
    async with gateway_api(start_service) as api:
        await api.new_project("web")
        await api.new_project("other")
        kept = (await _new_account(api, "web", "kept", "VIEWER", "OPERATOR")).body
        gone = (await _new_account(api, "web", "gone", "ADMIN")).body
        await _new_account(api, "other", "kept", "AUDITOR")
        used = (await _mint(api, "web", "kept", roles=["VIEWER"], expires_in_days=7)).body
        revoked = (await _mint(api, "web", "kept", name="r")).body
        await _mint(api, "web", "gone")
        await _mint(api, "web", "gone")
        assert (await api.call("GET", "/api/v1/me", token=used["token"])).status == 200
        base = f"{_accounts('web')}/{kept['id']}"
        await api.call("DELETE", f"{base}/tokens/{revoked['id']}")
        await api.call("DELETE", f"{_accounts('web')}/{gone['id']}")
        await _new_account(api, "web", "gone", "VIEWER")  # the freed name, taken again
        await api.runtime.stop()

    tables = [*PROJECTION_TABLES, "applied_commands"]
    before = await table_digest(settings.database_url, "gateway", tables)
    usage_before = await table_digest(
        settings.database_url, "gateway", ["service_account_token_usage"]
    )
    output = await _replay_in_subprocess(settings)
    assert "gateway.identity: rebuilt from sequence 0" in output
    assert await table_digest(settings.database_url, "gateway", tables) == before
    # Last use is not derived from events: the replay leaves it as it was.
    after = await table_digest(settings.database_url, "gateway", ["service_account_token_usage"])
    assert after == usage_before
    conn = await asyncpg.connect(settings.database_url)
    try:
        counts = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM gateway.service_accounts) AS accounts, "
            "(SELECT count(*) FROM gateway.service_accounts WHERE deleted_at IS NOT NULL) "
            "AS deleted, (SELECT count(*) FROM gateway.service_account_tokens) AS tokens, "
            "(SELECT count(*) FROM gateway.service_account_tokens WHERE revoked_at IS NULL) "
            "AS live, (SELECT count(*) FROM gateway.service_account_token_usage) AS used"
        )
    finally:
        await conn.close()
    assert dict(counts) == {"accounts": 4, "deleted": 1, "tokens": 4, "live": 1, "used": 1}
