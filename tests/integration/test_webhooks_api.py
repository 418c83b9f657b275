"""Webhook subscriptions through the gateway, against a real webhook-fanout, NATS and
PostgreSQL: the lifecycle, the write-only secret and its rotation, ETags, the receiver URL
and event checks, roles, Idempotency-Key, and a replay of the projection."""

from __future__ import annotations

import datetime as dt
import logging
import uuid

import asyncpg
import pytest

from contracts.events.webhooks import WebhookDisabled
from services.registry import definition
from services.webhook_fanout.subscriptions import store
from services.webhook_fanout.subscriptions.store import PROJECTION_TABLES
from shared.commands import publish_visible
from shared.rpc import CallContext
from shared.service import Runtime
from shared.settings import Settings
from tests.conftest import StartService, table_digest
from tests.integration.release_candidates_support import events_of
from tests.integration.test_gateway_support import stream_count
from tests.integration.webhooks_support import RECEIVER, new_webhook, stream_bytes, webhooks_stack

HOOKS = "/api/admin/webhooks"


async def _signing(runtime: Runtime, webhook_id: str, at: dt.datetime) -> list[str]:
    conn = await asyncpg.connect(runtime.settings.database_url)
    try:
        return await store.signing_secrets(conn, webhook_id, at)
    finally:
        await conn.close()


async def test_the_lifecycle_and_the_write_only_secret(
    start_service: StartService,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with webhooks_stack(start_service) as (api, fanout):
        project = await api.new_project()
        created = await api.call(
            "POST",
            HOOKS,
            json={
                "url": RECEIVER,
                "events": ["release.decided", "finding.*", "release.decided", "artifact.*"],
                "project": project["slug"],
                "description": "release bot",
            },
        )
        assert created.status == 201, created.body
        hook, secret = created.body["webhook"], created.body["secret"]
        webhook_id = hook["id"]
        assert secret.startswith("whsec_") and len(secret) > 40
        assert created.headers["Location"] == f"{HOOKS}/{webhook_id}"
        assert created.headers["ETag"] == '"v1"'
        assert created.headers["Cache-Control"] == "no-store"
        assert hook["events"] == ["release.decided", "finding.*", "artifact.*"]
        assert hook["project_id"] == project["id"] and hook["format"] == "standard"
        assert (hook["enabled"], hook["secret_version"], hook["revision"]) == (True, 1, 1)
        now = dt.datetime.now(dt.UTC)
        assert await _signing(fanout, webhook_id, now) == [secret]

        # Read back: never the secret.
        got = await api.call("GET", f"{HOOKS}/{webhook_id}")
        assert got.status == 200 and got.headers["ETag"] == '"v1"', got.body
        assert got.body == hook and "secret" not in got.body
        listed = await api.call("GET", HOOKS)
        assert [item["id"] for item in listed.body["items"]] == [webhook_id]
        assert secret not in str(listed.body) and secret not in str(got.body)

        # If-Match: a stale ETag is refused, nothing published; the right one changes it.
        before = await stream_count(api.runtime)
        stale = await api.call(
            "PATCH",
            f"{HOOKS}/{webhook_id}",
            json={"description": "x"},
            headers={"If-Match": '"v9"'},
        )
        assert (stale.status, stale.code) == (412, "precondition_failed"), stale.body
        assert stale.body["current_etag"] == '"v1"'
        same = await api.call("PATCH", f"{HOOKS}/{webhook_id}", json={"description": "release bot"})
        assert same.status == 200 and same.body["revision"] == 1
        assert await stream_count(api.runtime) == before
        patched = await api.call(
            "PATCH",
            f"{HOOKS}/{webhook_id}",
            json={"description": "new", "project": None, "events": ["scan.completed"]},
            headers={"If-Match": '"v1"'},
        )
        assert patched.status == 200 and patched.headers["ETag"] == '"v2"', patched.body
        assert patched.body["project_id"] is None and patched.body["events"] == ["scan.completed"]
        updates = [e.payload for e in await events_of(fanout, "webhook.updated")]
        assert [(u.description, u.project_id) for u in updates] == [("new", None)]

        # Rotation: a new secret, once; the previous one signs during the grace period.
        rotated = await api.call(
            "POST", f"{HOOKS}/{webhook_id}/rotate-secret", json={"grace_seconds": 3600}
        )
        assert rotated.status == 200, rotated.body
        new_secret = rotated.body["secret"]
        assert new_secret.startswith("whsec_") and new_secret != secret
        assert rotated.body["webhook"]["secret_version"] == 2
        now = dt.datetime.now(dt.UTC)
        assert await _signing(fanout, webhook_id, now) == [new_secret, secret]
        later = now + dt.timedelta(hours=2)
        assert await _signing(fanout, webhook_id, later) == [new_secret]
        given = "whsec_" + "QUJD" * 11
        again = await api.call(
            "POST",
            f"{HOOKS}/{webhook_id}/rotate-secret",
            json={"grace_seconds": 0, "secret": given},
        )
        assert again.status == 200 and again.body["secret"] == given, again.body
        assert await _signing(fanout, webhook_id, dt.datetime.now(dt.UTC)) == [given]

        # The sender disables a failing subscription; enabling it again clears the reason.
        await publish_visible(
            fanout.bus,
            fanout.runners["subscriptions"],
            WebhookDisabled(id=webhook_id, reason="gone", detail="410 Gone"),
            aggregate=f"webhook:{webhook_id}",
            ctx=CallContext(request_id="", actor="system"),
            settings=fanout.settings,
        )
        disabled = (await api.call("GET", f"{HOOKS}/{webhook_id}")).body
        assert (disabled["enabled"], disabled["disabled_reason"]) == (False, "gone")
        enabled = await api.call("PATCH", f"{HOOKS}/{webhook_id}", json={"enabled": True})
        assert (enabled.body["enabled"], enabled.body["disabled_reason"]) == (True, None)
        manual = await api.call("PATCH", f"{HOOKS}/{webhook_id}", json={"enabled": False})
        assert manual.body["disabled_reason"] == "manual"

        # DELETE honours If-Match, then the subscription is gone and signs nothing.
        etag = (await api.call("GET", f"{HOOKS}/{webhook_id}")).headers["ETag"]
        refused = await api.call("DELETE", f"{HOOKS}/{webhook_id}", headers={"If-Match": '"v1"'})
        assert refused.status == 412, refused.body
        gone = await api.call("DELETE", f"{HOOKS}/{webhook_id}", headers={"If-Match": etag})
        assert gone.status == 204, gone.body
        for method in ("GET", "DELETE"):
            missing = await api.call(method, f"{HOOKS}/{webhook_id}")
            assert (missing.status, missing.code) == (404, "webhook_not_found"), missing.body
        assert (await api.call("GET", f"{HOOKS}/wh_nothing")).code == "webhook_not_found"
        assert (await api.call("GET", HOOKS)).body["items"] == []
        assert await _signing(fanout, webhook_id, dt.datetime.now(dt.UTC)) == []

        # The secrets never travel on the bus, nor reach a log.
        published = await stream_bytes(fanout)
        assert b"webhook.secret-rotated" in published
        for shown in (secret, new_secret, given):
            assert shown.encode() not in published
            assert shown not in capsys.readouterr().err and shown not in caplog.text


async def test_lists_page_with_an_opaque_cursor(start_service: StartService) -> None:
    async with webhooks_stack(start_service) as (api, _):
        made = [(await new_webhook(api))["webhook"]["id"] for _ in range(5)]
        seen: list[str] = []
        cursor = None
        while True:
            query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
            page = await api.call("GET", HOOKS + query)
            assert page.status == 200 and len(page.body["items"]) <= 2, page.body
            seen += [item["id"] for item in page.body["items"]]
            cursor = page.body["next_cursor"]
            if cursor is None:
                break
        assert seen == made
        for query in ("?limit=0", "?limit=501", "?cursor=nonsense", "?limit=2&x=1"):
            reply = await api.call("GET", HOOKS + query)
            assert reply.status == 422, (query, reply.body)


async def test_bad_input_is_refused_precisely_and_publishes_nothing(
    start_service: StartService,
) -> None:
    async with webhooks_stack(start_service) as (api, fanout):
        existing = (await new_webhook(api))["webhook"]["id"]
        before = await stream_count(api.runtime)
        refused_urls = {
            "https://user:pa55@93.184.216.34/h": "invalid_webhook_url",
            "ftp://93.184.216.34/h": "invalid_webhook_url",
            "file:///etc/passwd": "invalid_webhook_url",
            "javascript:alert(1)": "invalid_webhook_url",
            "gopher://93.184.216.34:70/": "invalid_webhook_url",
            "//93.184.216.34/h": "invalid_webhook_url",
            "https://93.184.216.34/h#frag": "invalid_webhook_url",
            "https://2130706433/h": "invalid_webhook_url",
            "http://127.0.0.1:8080/h": "receiver_url_refused",
            "http://[::1]/h": "receiver_url_refused",
            "http://10.1.2.3/h": "receiver_url_refused",
            "http://192.168.0.1/h": "receiver_url_refused",
            "http://169.254.169.254/latest/meta-data": "receiver_url_refused",
            "http://[::ffff:127.0.0.1]/h": "receiver_url_refused",
            "http://100.100.100.200/h": "receiver_url_refused",
            "http://localhost/h": "receiver_url_refused",
            "https://no-such-host.invalid/h": "receiver_url_refused",
        }
        for url, code in refused_urls.items():
            for method, path in (("POST", HOOKS), ("PATCH", f"{HOOKS}/{existing}")):
                reply = await api.call(
                    method, path, json={"url": url, "events": ["release.decided"]}
                )
                assert (reply.status, reply.code) == (422, code), (method, url, reply.body)
                assert reply.body["errors"][0]["field"] == "$.url", reply.body
                assert "pa55" not in str(reply.body)
        address = await api.call(
            "POST", HOOKS, json={"url": "http://127.0.0.1/", "events": ["release.decided"]}
        )
        assert address.body["reason"] == "address", address.body

        for events, named in (
            (["release.decidedd"], "release.decidedd"),
            (["nope.*"], "nope.*"),
            (["release.decided", "artifact.uploaded", "scan.nothing"], "scan.nothing"),
        ):
            reply = await api.call("POST", HOOKS, json={"url": RECEIVER, "events": events})
            assert (reply.status, reply.code) == (422, "unknown_event_type"), reply.body
            assert named in reply.body["detail"], reply.body
            assert reply.body["errors"][0]["field"] == "$.events", reply.body
        # Not even the shape of an event name: refused by the schema, naming the item.
        for events in (["release.decided", "Release.Decided"], ["release.decided", "*"]):
            reply = await api.call("POST", HOOKS, json={"url": RECEIVER, "events": events})
            assert (reply.status, reply.code) == (422, "validation_failed"), reply.body
            assert reply.body["errors"][0]["field"] == "$.events[1]", reply.body
        for body, status, code in (
            ({"url": RECEIVER, "events": []}, 422, "validation_failed"),
            ({"url": RECEIVER, "events": ["scan.completed"] * 101}, 422, "validation_failed"),
            (
                {"url": RECEIVER, "events": ["release.decided"], "description": "x" * 1001},
                422,
                None,
            ),
            ({"url": RECEIVER, "events": ["release.decided"], "description": "a\x00b"}, 422, None),
            ({"url": RECEIVER + "\x00", "events": ["release.decided"]}, 422, None),
            ({"url": RECEIVER, "events": ["release.decided\x00"]}, 422, None),
            ({"url": RECEIVER, "events": ["release.decided"], "format": "xml"}, 422, None),
            ({"url": RECEIVER, "events": ["release.decided"], "enabled": 2**64}, 422, None),
            (
                {"url": RECEIVER, "events": ["release.decided"], "project": "no-such"},
                422,
                "unknown_project",
            ),
            (
                {"url": RECEIVER, "events": ["release.decided"], "secret": "whsec_" + "A" * 20},
                422,
                "invalid_webhook_secret",
            ),
            (
                {
                    "url": RECEIVER,
                    "events": ["release.decided"],
                    "secret": "my-receivers-own-secret",
                },
                422,
                "invalid_webhook_secret",
            ),
            ({"url": RECEIVER, "events": ["release.decided"], "secret": "x" * 257}, 422, None),
            ({"url": RECEIVER, "events": ["release.decided"], "extra": 1}, 422, None),
            (
                {"url": "https://93.184.216.34/" + "a" * 3000, "events": ["release.decided"]},
                422,
                None,
            ),
            (
                {"url": RECEIVER, "events": ["release.decided"], "description": "x" * 1_100_000},
                413,
                None,
            ),
        ):
            reply = await api.call("POST", HOOKS, json=body)
            assert reply.status == status, (str(body)[:100], reply.body)
            assert code is None or reply.code == code, (str(body)[:100], reply.body)
            assert reply.code, reply.body
        deep = b'{"url":' + b"[" * 10_000 + b"]" * 10_000 + b"}"
        for path in (HOOKS, f"{HOOKS}/{existing}/rotate-secret"):
            reply = await api.call(
                "POST", path, data=deep, headers={"Content-Type": "application/json"}
            )
            assert (reply.status, reply.code) == (422, "too_deep"), reply.body
        for body in (
            {"grace_seconds": 2**63},
            {"grace_seconds": -1},
            {"grace_seconds": 7 * 24 * 3600 + 1},
            {"secret": "short"},
            {"secret": "whsec_!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"},
            {"secret": "valid-but-free-form-secret"},  # a standard subscription needs whsec_
            {"grace_seconds": "2000-01-01T00:00:00+14:00"},
        ):
            reply = await api.call("POST", f"{HOOKS}/{existing}/rotate-secret", json=body)
            assert reply.status == 422 and reply.code, (body, reply.body)
        for patch in (
            {"events": ["nope.created"]},
            {"url": "http://[::1]:80/"},
            {"description": "\x00"},
            {"project": "no-such"},
            {"format": "orbitalreg", "url": "ftp://x"},
            {"revision": 5},
        ):
            reply = await api.call("PATCH", f"{HOOKS}/{existing}", json=patch)
            assert reply.status == 422 and reply.code, (patch, reply.body)
        missing = f"{HOOKS}/wh_{uuid.uuid4().hex}"
        assert (await api.call("PATCH", missing, json={"enabled": False})).status == 404
        assert (await api.call("POST", missing + "/rotate-secret", json={})).status == 404
        assert await stream_count(api.runtime) == before
        view = (await api.call("GET", f"{HOOKS}/{existing}")).body
        assert view["revision"] == 1 and view["url"] == RECEIVER

        # An orbitalreg subscription keeps the secret its receiver already has; switching it
        # to a Standard Webhooks format needs a whsec_ secret first.
        own = "my-receivers-own-secret"
        orbital = await new_webhook(api, format="orbitalreg", secret=own)
        assert orbital["secret"] == own
        orbital_id = orbital["webhook"]["id"]
        switch = await api.call("PATCH", f"{HOOKS}/{orbital_id}", json={"format": "cloudevents"})
        assert (switch.status, switch.code) == (422, "invalid_webhook_secret"), switch.body
        assert own not in str(switch.body)
        await api.call("POST", f"{HOOKS}/{orbital_id}/rotate-secret", json={"grace_seconds": 0})
        switch = await api.call("PATCH", f"{HOOKS}/{orbital_id}", json={"format": "cloudevents"})
        assert switch.status == 200 and switch.body["format"] == "cloudevents", switch.body
        assert own.encode() not in await stream_bytes(fanout)


async def test_internal_receivers_pass_inside_the_allowed_cidrs(
    start_service: StartService,
) -> None:
    async with webhooks_stack(start_service, outbound_allow_cidrs="127.0.0.0/8") as (api, _):
        ok = await api.call(
            "POST", HOOKS, json={"url": "http://127.0.0.1:9/h", "events": ["release.decided"]}
        )
        assert ok.status == 201, ok.body
        for url in ("http://10.0.0.1/h", "http://169.254.169.254/", "http://[::1]/h"):
            reply = await api.call("POST", HOOKS, json={"url": url, "events": ["release.*"]})
            assert (reply.status, reply.code) == (422, "receiver_url_refused"), reply.body


async def test_only_admins_manage_webhooks(start_service: StartService) -> None:
    async with webhooks_stack(start_service) as (api, _):
        project = await api.new_project()
        hook = (await new_webhook(api))["webhook"]["id"]
        tokens = [(await api.new_key(role))[1] for role in ("VIEWER", "OPERATOR", "AUDITOR")]
        tokens.append((await api.new_key("ADMIN", project=project["id"]))[1])
        before = await stream_count(api.runtime)
        body = {"url": RECEIVER, "events": ["release.decided"]}
        for token in tokens:
            for method, path, sent in (
                ("POST", HOOKS, body),
                ("GET", HOOKS, None),
                ("GET", f"{HOOKS}/{hook}", None),
                ("PATCH", f"{HOOKS}/{hook}", {"enabled": False}),
                ("DELETE", f"{HOOKS}/{hook}", None),
                ("POST", f"{HOOKS}/{hook}/rotate-secret", {}),
            ):
                reply = await api.call(method, path, json=sent, token=token)
                assert reply.status == 403, (method, path, reply.body)
        assert await stream_count(api.runtime) == before


async def test_an_idempotent_retry_makes_one_webhook_and_never_repeats_the_secret(
    start_service: StartService,
) -> None:
    async with webhooks_stack(start_service) as (api, fanout):
        body = {"url": RECEIVER, "events": ["release.decided"]}
        key = {"Idempotency-Key": uuid.uuid4().hex}
        first = await api.call("POST", HOOKS, json=body, headers=key)
        assert first.status == 201 and first.body["secret"], first.body
        replay = await api.call("POST", HOOKS, json=body, headers=key)
        assert replay.status == 201 and replay.headers.get("Idempotent-Replayed") == "true"
        assert replay.body["webhook"]["id"] == first.body["webhook"]["id"]
        assert replay.body["secret"] is None
        assert first.body["secret"] not in str(replay.body)
        assert len(await events_of(fanout, "webhook.created")) == 1
        # Another caller with the same key is another command: its own webhook and secret.
        _, other = await api.new_key("ADMIN")
        theirs = await api.call("POST", HOOKS, json=body, headers=key, token=other)
        assert theirs.status == 201 and theirs.body["secret"] not in (None, first.body["secret"])
        assert theirs.body["webhook"]["id"] != first.body["webhook"]["id"]

        path = f"{HOOKS}/{first.body['webhook']['id']}/rotate-secret"
        rotate_key = {"Idempotency-Key": uuid.uuid4().hex}
        rotated = await api.call("POST", path, json={}, headers=rotate_key)
        again = await api.call("POST", path, json={}, headers=rotate_key)
        assert rotated.body["secret"] and again.body["secret"] is None, again.body
        assert again.body["webhook"]["secret_version"] == 2
        assert len(await events_of(fanout, "webhook.secret-rotated")) == 1


async def test_replay_rebuilds_the_subscriptions(
    start_service: StartService, settings: Settings
) -> None:
    async with webhooks_stack(start_service) as (api, fanout):
        project = await api.new_project()
        ids = [
            (await new_webhook(api, project=project["id"], format=fmt))["webhook"]["id"]
            for fmt in ("standard", "orbitalreg", "slack", "cloudevents")
        ]
        await api.call("PATCH", f"{HOOKS}/{ids[0]}", json={"events": ["finding.*"]})
        await api.call("PATCH", f"{HOOKS}/{ids[1]}", json={"enabled": False, "project": None})
        await api.call("POST", f"{HOOKS}/{ids[2]}/rotate-secret", json={"grace_seconds": 60})
        await api.call("DELETE", f"{HOOKS}/{ids[3]}")
        await publish_visible(
            fanout.bus,
            fanout.runners["subscriptions"],
            WebhookDisabled(id=ids[0], reason="failing"),
            aggregate=f"webhook:{ids[0]}",
            ctx=CallContext(request_id="", actor="system"),
            settings=fanout.settings,
        )
        await fanout.stop()
    tables = list(PROJECTION_TABLES)
    before = await table_digest(settings.database_url, "webhook_fanout", tables)
    runtime = Runtime(definition("webhook-fanout"), settings.with_(service="webhook-fanout"))
    await runtime.start(serve=False)
    try:
        assert await runtime.runners["subscriptions"].replay() > 0
    finally:
        await runtime.stop()
    assert await table_digest(settings.database_url, "webhook_fanout", tables) == before
