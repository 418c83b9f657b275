"""Bad input and edge behaviour: 413, 415, 422, malformed JSON, 429, Idempotency-Key,
problem+json 404s, X-Request-ID — and a refused write leaves no event and no row."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from shared.db import advisory_key
from tests.conftest import StartService, wait_until
from tests.integration.test_gateway_support import (
    NO_TOKEN,
    Api,
    gateway_api,
    row_count,
    stream_count,
)


async def _nothing_written(api: Api, attempt: object) -> None:
    """Run ``attempt`` (a coroutine of a refused write) and prove it changed nothing."""
    events = await stream_count(api.runtime)
    rows = {t: await row_count(api.runtime, t) for t in ("projects", "api_keys", "users")}
    await attempt  # type: ignore[misc]
    assert await stream_count(api.runtime) == events
    assert {t: await row_count(api.runtime, t) for t in rows} == rows


async def test_refused_writes_answer_problems_and_write_nothing(
    start_service: StartService,
) -> None:
    async with gateway_api(start_service, max_body_bytes=2048) as api:
        await api.new_project("exists")

        async def expect(status: int, code: str, *args: object, **kwargs: object) -> None:
            reply = await api.call(*args, **kwargs)  # type: ignore[arg-type]
            assert (reply.status, reply.code) == (status, code), (args, reply.body)
            assert reply.headers["Content-Type"].startswith("application/problem+json")
            assert reply.body["request_id"] == reply.headers["X-Request-ID"]
            assert {"type", "title", "status", "detail"} <= set(reply.body)
            assert "Traceback" not in str(reply.body)

        post = ("POST", "/api/v1/projects")
        cases = [
            (413, "payload_too_large", *post, {"json": {"slug": "big", "name": "x" * 4000}}),
            (
                415,
                "unsupported_media_type",
                *post,
                {
                    "data": b"slug=x",
                    "headers": {"Content-Type": "application/x-www-form-urlencoded"},
                },
            ),
            (415, "unsupported_media_type", *post, {"data": b'{"slug":"x","name":"y"}'}),
            (
                422,
                "malformed_json",
                *post,
                {"data": b'{"slug": ', "headers": {"Content-Type": "application/json"}},
            ),
            (422, "validation_failed", *post, {"json": {"slug": "Bad Slug", "name": "x"}}),
            (422, "validation_failed", *post, {"json": {"slug": "ok-slug"}}),
            # PostgreSQL text cannot hold NUL: refused at the edge, before any event.
            (422, "validation_failed", *post, {"json": {"slug": "nul", "name": "a\u0000b"}}),
            (
                422,
                "validation_failed",
                *post,
                {"json": {"slug": "nul", "name": "n", "repos": ["acme/ok", "acme/\u0000"]}},
            ),
            (409, "slug_taken", *post, {"json": {"slug": "exists", "name": "x"}}),
            (
                422,
                "validation_failed",
                "POST",
                "/api/v1/api-keys",
                {"json": {"name": "k", "roles": ["ROOT"]}},
            ),
            (
                422,
                "validation_failed",
                "POST",
                "/api/v1/api-keys",
                {"json": {"name": "k", "roles": []}},
            ),
            (
                422,
                "unknown_project",
                "POST",
                "/api/v1/api-keys",
                {"json": {"name": "k", "roles": ["VIEWER"], "project": "nope"}},
            ),
            (
                412,
                "precondition_failed",
                "PATCH",
                "/api/v1/projects/exists",
                {"json": {"name": "n"}, "headers": {"If-Match": '"v999"'}},
            ),
            (404, "not_found", "PATCH", "/api/v1/projects/missing", {"json": {"name": "n"}}),
            (
                422,
                "validation_failed",
                "POST",
                "/api/v1/users",
                {"json": {"login": "-bad", "name": "x"}},
            ),
            (
                422,
                "validation_failed",
                "POST",
                "/api/v1/users",
                {
                    "json": {
                        "login": "dup",
                        "name": "x",
                        "emails": [{"email": "a@x.org"}, {"email": "A@x.org"}],
                    }
                },
            ),
        ]
        for status, code, method, path, kwargs in cases:
            await _nothing_written(api, expect(status, code, method, path, **kwargs))

        named = await api.call(*post, json={"slug": "Bad Slug", "name": "x"})
        assert named.body["errors"][0]["field"] == "$.slug"
        missing = await api.call(*post, json={"slug": "ok-slug"})
        assert missing.body["errors"][0]["field"] == "$.name"
        role = await api.call("POST", "/api/v1/api-keys", json={"name": "k", "roles": ["ROOT"]})
        assert role.body["errors"][0]["field"] == "$.roles[0]"
        nul = await api.call(*post, json={"slug": "nul", "name": "n", "repos": ["a/b", "a/\u0000"]})
        assert nul.body["errors"][0]["field"] == "$.repos[1]"
        # Escaped, a backslash followed by u0000 is text like any other.
        fine = await api.call(*post, json={"slug": "not-nul", "name": "a\\u0000b"})
        assert fine.status == 201, fine.body
        query = await api.call("GET", "/api/v1/projects?cursor=a%00b")
        assert (query.status, query.code) == (422, "validation_failed"), query.body
        assert query.body["errors"][0] == {
            "field": "$.cursor",
            "message": "NUL characters are not accepted",
            "in": "query",
        }


async def test_unknown_paths_and_methods_are_problem_json(start_service: StartService) -> None:
    async with gateway_api(start_service) as api:
        for method, path, status in (
            ("GET", "/api/v1/nothing-here", 404),
            ("GET", "/api/v1/projects/nope", 404),
            ("GET", "/api/v1/users/nobody", 404),
            ("PUT", "/api/v1/projects", 405),
        ):
            reply = await api.call(method, path)
            assert reply.status == status, (method, path)
            assert reply.headers["Content-Type"].startswith("application/problem+json")
            assert reply.body["status"] == status and reply.body["request_id"]
            assert reply.body["title"] != "Internal error", reply.body


async def test_request_id_is_echoed_or_made_up(start_service: StartService) -> None:
    async with gateway_api(start_service) as api:
        mine = f"req-{uuid.uuid4().hex}"
        ok = await api.call("GET", "/api/v1/me", headers={"X-Request-ID": mine})
        assert ok.headers["X-Request-ID"] == mine
        failed = await api.call("GET", "/api/v1/projects/nope", headers={"X-Request-ID": mine})
        assert failed.headers["X-Request-ID"] == mine and failed.body["request_id"] == mine
        unauthenticated = await api.call(
            "GET", "/api/v1/me", token=NO_TOKEN, headers={"X-Request-ID": mine}
        )
        assert unauthenticated.body["request_id"] == mine
        made_up = await api.call(
            "GET", "/api/v1/me", headers={"X-Request-ID": "bad id with spaces"}
        )
        assert made_up.headers["X-Request-ID"] not in ("", "bad id with spaces")


async def test_rate_limits_answer_429_with_retry_after(start_service: StartService) -> None:
    async with gateway_api(
        start_service, rate_limit_per_token=0.2, rate_limit_per_ip=0.2, rate_limit_burst=3
    ) as api:
        _, other = await api.new_key("VIEWER")  # the admin's first request
        statuses = [(await api.call("GET", "/api/v1/me")).status for _ in range(3)]
        assert statuses == [200, 200, 429]
        limited = await api.call("GET", "/api/v1/me")
        assert limited.code == "rate_limited" and int(limited.headers["Retry-After"]) >= 1
        assert limited.headers["Content-Type"].startswith("application/problem+json")
        # Buckets are per token: another key is not limited by the admin's use.
        assert (await api.call("GET", "/api/v1/me", token=other)).status == 200
        # Public routes are limited per client address.
        public = [
            (await api.call("GET", "/api/public-config", token=NO_TOKEN)).status for _ in range(4)
        ]
        assert public == [200, 200, 200, 429]


async def test_idempotency_key_replays_the_first_answer(start_service: StartService) -> None:
    async with gateway_api(start_service) as api:
        key = {"Idempotency-Key": f"k-{uuid.uuid4().hex}"}
        body = {"slug": "idem", "name": "Idem"}
        first = await api.call("POST", "/api/v1/projects", json=body, headers=key)
        assert first.status == 201 and "Idempotent-Replayed" not in first.headers
        events = await stream_count(api.runtime)
        # Same request (key order does not matter): the stored answer, nothing new recorded.
        second = await api.call(
            "POST", "/api/v1/projects", json={"name": "Idem", "slug": "idem"}, headers=key
        )
        assert second.status == 201 and second.headers["Idempotent-Replayed"] == "true"
        assert second.body == first.body
        assert second.headers["ETag"] == first.headers["ETag"]
        assert second.headers["Location"] == first.headers["Location"]
        assert await stream_count(api.runtime) == events
        # Same key, other body: refused.
        reused = await api.call(
            "POST", "/api/v1/projects", json={"slug": "idem2", "name": "x"}, headers=key
        )
        assert (reused.status, reused.code) == (422, "idempotency_key_reused")
        # Keys belong to a principal: another key may use the same Idempotency-Key.
        _, other = await api.new_key("ADMIN")
        theirs = await api.call(
            "POST",
            "/api/v1/projects",
            json={"slug": "theirs", "name": "t"},
            headers=key,
            token=other,
        )
        assert theirs.status == 201 and "Idempotent-Replayed" not in theirs.headers
        # A 4xx answer is stored too; a new key runs the request again.
        conflict_key = {"Idempotency-Key": "conflict"}
        c1 = await api.call("POST", "/api/v1/projects", json=body, headers=conflict_key)
        c2 = await api.call("POST", "/api/v1/projects", json=body, headers=conflict_key)
        assert c1.code == c2.code == "slug_taken" and c2.headers["Idempotent-Replayed"] == "true"
        bad = await api.call(
            "POST", "/api/v1/projects", json=body, headers={"Idempotency-Key": "has space"}
        )
        assert (bad.status, bad.code) == (422, "invalid_idempotency_key")
        # After 24 hours a key is forgotten: the same key runs a new request.
        conn = await asyncpg.connect(api.runtime.settings.database_url)
        try:
            await conn.execute(
                "UPDATE gateway.idempotency_keys "
                "SET started_at = started_at - interval '25 hours', "
                "expires_at = expires_at - interval '25 hours'"
            )
        finally:
            await conn.close()
        fresh = await api.call(
            "POST", "/api/v1/projects", json={"slug": "after-a-day", "name": "x"}, headers=key
        )
        assert fresh.status == 201 and "Idempotent-Replayed" not in fresh.headers


async def test_a_replayed_key_creation_never_repeats_the_token(start_service: StartService) -> None:
    async with gateway_api(start_service) as api:
        key = {"Idempotency-Key": "new-key-1"}
        body = {"name": "ci", "roles": ["VIEWER"]}
        first = await api.call("POST", "/api/v1/api-keys", json=body, headers=key)
        second = await api.call("POST", "/api/v1/api-keys", json=body, headers=key)
        assert first.body["token"].startswith("gh_")
        assert second.headers["Idempotent-Replayed"] == "true" and second.body["token"] is None
        assert second.body["id"] == first.body["id"]
        conn = await asyncpg.connect(api.runtime.settings.database_url)
        try:
            stored = await conn.fetchval("SELECT body FROM gateway.idempotency_keys")
        finally:
            await conn.close()
        assert first.body["token"].encode() not in stored


async def test_idempotency_key_in_progress_is_409(start_service: StartService) -> None:
    async with gateway_api(start_service) as api:
        conn = await asyncpg.connect(api.runtime.settings.database_url)
        try:
            # Hold the slug's command lock so that the first request stays in its handler.
            lock = advisory_key("gateway:project-slug:slow")
            await conn.execute("SELECT pg_advisory_lock($1)", lock)
            key = {"Idempotency-Key": "slow-1"}
            body = {"slug": "slow", "name": "Slow"}
            first = asyncio.create_task(
                api.call("POST", "/api/v1/projects", json=body, headers=key)
            )

            async def running() -> bool:
                return bool(await conn.fetchval("SELECT running FROM gateway.idempotency_keys"))

            await wait_until(running)
            second = await api.call("POST", "/api/v1/projects", json=body, headers=key)
            assert (second.status, second.code) == (409, "idempotency_key_in_progress")
            await conn.execute("SELECT pg_advisory_unlock($1)", lock)
            assert (await first).status == 201
            third = await api.call("POST", "/api/v1/projects", json=body, headers=key)
            assert third.status == 201 and third.headers["Idempotent-Replayed"] == "true"
        finally:
            await conn.close()
