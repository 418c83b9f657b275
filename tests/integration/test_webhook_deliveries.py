"""Webhook deliveries against a real local receiver: signatures of every format, order per
subscription under retries, attempts recorded, 410, dead letters, a hanging receiver, huge
answers, addresses refused at delivery, the test send, redelivery and replay, and the project
filter on events that name only a repo."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json

import msgspec
from aiohttp import web
from standardwebhooks import Webhook

from contracts.envelope import EventPayload
from contracts.events.identity import ProjectCreated, ProjectUpdated
from contracts.events.releases import ReleaseDecided
from contracts.events.webhooks import WebhookDeliveryFailed, WebhookDisabled
from contracts.ids import new_id
from services.webhook_fanout.deliveries import operations
from services.webhook_fanout.deliveries.client import DeliveryClient
from services.webhook_fanout.deliveries.outcomes import delivery_id
from shared.settings import Settings
from tests.conftest import StartService, wait_until
from tests.integration.webhook_delivery_support import (
    FANOUT_SETTINGS,
    attempts_of,
    deliveries_of,
    events_of_type,
    publish_projects,
    receiver,
    rows,
    statuses,
    subscribe,
    subscribe_outside_policy,
)


async def test_every_format_is_delivered_signed(
    start_service: StartService, settings: Settings
) -> None:
    fanout = await start_service("webhook-fanout", **FANOUT_SETTINGS)
    async with receiver() as rec:
        subs = {
            fmt: await subscribe(fanout.bus, url=rec.url(fmt), events=["project.*"], format=fmt)
            for fmt in ("standard", "orbitalreg", "cloudevents", "slack")
        }
        [event] = await publish_projects(fanout.bus, 1)

        async def all_in() -> bool:
            return all(rec.at(fmt) for fmt in subs)

        await wait_until(all_in)
        (sid, secret), got = subs["standard"], rec.at("standard")[0]
        assert Webhook(secret).verify(got.body, got.headers)["id"] == event.id
        assert got.headers["webhook-id"] == str(delivery_id(sid, event.id))

        (sid, secret), got = subs["orbitalreg"], rec.at("orbitalreg")[0]
        expected = "sha256=" + hmac.new(secret.encode(), got.body, hashlib.sha256).hexdigest()
        assert got.headers["X-Orbitalreg-Signature"] == expected
        assert got.headers["X-Orbitalreg-Delivery"] == str(delivery_id(sid, event.id))
        assert got.headers["X-Orbitalreg-Event"] == "project.created"
        assert json.loads(got.body)["id"] == event.id

        (sid, secret), got = subs["cloudevents"], rec.at("cloudevents")[0]
        Webhook(secret).verify(got.body, got.headers)
        cloud = json.loads(got.body)
        assert (cloud["specversion"], cloud["id"], cloud["type"]) == (
            "1.0",
            event.id,
            "project.created",
        )
        assert got.headers["Content-Type"].startswith("application/cloudevents+json")

        got = rec.at("slack")[0]
        assert "webhook-signature" not in got.headers
        assert json.loads(got.body)["blocks"]

        async def all_recorded() -> bool:
            found = await rows(
                settings,
                "SELECT count(*) AS n FROM webhook_fanout.deliveries WHERE status = 'succeeded'",
            )
            return bool(found[0]["n"] == 4)

        await wait_until(all_recorded)
        [attempt] = await attempts_of(settings, delivery_id(subs["standard"][0], event.id))
        assert attempt["response_status"] == 200 and attempt["response_body"] == "ok"
        assert attempt["request_headers"]["webhook-id"] == str(
            delivery_id(subs["standard"][0], event.id)
        )


async def test_500_three_times_then_200_keeps_the_order_and_records_four_attempts(
    start_service: StartService, settings: Settings
) -> None:
    fanout = await start_service("webhook-fanout", **FANOUT_SETTINGS)
    async with receiver() as rec:
        rec.script["flaky"] = statuses(500, 500, 500)
        sid, _ = await subscribe(fanout.bus, url=rec.url("flaky"), events=["project.*"])
        events = await publish_projects(fanout.bus, 5)

        async def delivered() -> bool:
            found = await deliveries_of(settings, sid)
            return len(found) == 5 and all(d["status"] == "succeeded" for d in found)

        await wait_until(delivered, timeout=20)
        received = [json.loads(r.body)["id"] for r in rec.at("flaky")]
        first = events[0].id
        assert received == [first] * 4 + [e.id for e in events[1:]]
        attempts = await attempts_of(settings, delivery_id(sid, first))
        assert [a["response_status"] for a in attempts] == [500, 500, 500, 200]
        assert [a["attempt"] for a in attempts] == [1, 2, 3, 4]
        assert attempts[0]["response_body"] == "answer 500"


async def test_410_disables_the_subscription_at_once(
    start_service: StartService, settings: Settings
) -> None:
    fanout = await start_service("webhook-fanout", **FANOUT_SETTINGS)
    async with receiver() as rec:
        rec.script["gone"] = statuses(then=410)
        sid, _ = await subscribe(fanout.bus, url=rec.url("gone"), events=["project.*"])
        await publish_projects(fanout.bus, 3)

        async def disabled() -> bool:
            return bool(await events_of_type(fanout.bus, "webhook.disabled"))

        await wait_until(disabled)
        [raw] = await events_of_type(fanout.bus, "webhook.disabled")
        payload = msgspec.json.decode(
            msgspec.json.encode(json.loads(raw)["data"]), type=WebhookDisabled
        )
        assert (payload.id, payload.reason) == (sid, "gone")
        found = await deliveries_of(settings, sid)
        assert [d["status"] for d in found] == ["dead", "cancelled", "cancelled"]
        await publish_projects(fanout.bus, 2)  # nothing more is sent or queued
        await fanout.runners["intake"].wait_for(await fanout.bus.last_sequence(), timeout=10)
        assert len(rec.at("gone")) == 1
        assert len(await deliveries_of(settings, sid)) == 3


async def test_exhausted_deliveries_are_dead_lettered_and_announced(
    start_service: StartService, settings: Settings
) -> None:
    fanout = await start_service("webhook-fanout", **FANOUT_SETTINGS)
    async with receiver() as rec:
        rec.script["down"] = statuses(then=503)
        sid, _ = await subscribe(fanout.bus, url=rec.url("down"), events=["project.*"])
        [event, later] = await publish_projects(fanout.bus, 2)

        async def announced() -> bool:
            return len(await events_of_type(fanout.bus, "webhook.delivery-failed")) == 2

        await wait_until(announced, timeout=30)
        found = await deliveries_of(settings, sid)
        assert [(d["status"], d["attempts"]) for d in found] == [("dead", 10), ("dead", 10)]
        first = json.loads((await events_of_type(fanout.bus, "webhook.delivery-failed"))[0])
        failed = msgspec.convert(first["data"], WebhookDeliveryFailed)
        assert (failed.id, failed.event_id, failed.attempts, failed.last_status) == (
            sid,
            event.id,
            10,
            503,
        )
        # In order: every attempt at the first event came before any at the later one.
        order = [json.loads(r.body)["id"] for r in rec.at("down")]
        assert order == [event.id] * 10 + [later.id] * 10

        # Redelivery: a new series, same id, recorded after the first ten attempts.
        rec.script["down"] = statuses()
        async with fanout.pool.acquire() as conn:
            again = await operations.requeue(conn, delivery_id(sid, event.id))
        assert again is not None

        async def redelivered() -> bool:
            return len(await attempts_of(settings, delivery_id(sid, event.id))) == 11

        await wait_until(redelivered)
        assert rec.at("down")[-1].headers["webhook-id"] == str(delivery_id(sid, event.id))


async def test_a_hanging_receiver_delays_only_its_own_subscription(
    start_service: StartService, settings: Settings
) -> None:
    fanout = await start_service("webhook-fanout", **FANOUT_SETTINGS)
    async with receiver() as rec:

        async def hang(_request: web.Request) -> web.StreamResponse:
            await rec.release.wait()
            return web.Response(text="late")

        rec.script["hang"] = hang
        await subscribe(fanout.bus, url=rec.url("hang"), events=["project.*"])
        await subscribe(fanout.bus, url=rec.url("fast"), events=["project.*"])
        events = await publish_projects(fanout.bus, 50)

        async def fast_done() -> bool:
            return len(rec.at("fast")) == 50

        await wait_until(fast_done, timeout=10)
        assert [json.loads(r.body)["id"] for r in rec.at("fast")] == [e.id for e in events]
        assert len(rec.at("hang")) == 1  # only the head of its queue is in flight


async def test_huge_and_endless_answers_cost_64_kib(
    start_service: StartService, settings: Settings
) -> None:
    fanout = await start_service("webhook-fanout", **FANOUT_SETTINGS)
    async with receiver() as rec:
        chunk = b"x" * 65536

        async def huge(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(status=200)
            response.content_length = 100 * 1024 * 1024
            await response.prepare(request)
            for _ in range(1600):  # 100 MB, unless the client hangs up first
                await response.write(chunk)
            return response

        async def endless(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(status=200)
            await response.prepare(request)
            while True:  # chunked, never finished
                await response.write(chunk)
                await asyncio.sleep(0.01)

        rec.script["huge"] = huge
        rec.script["endless"] = endless
        huge_sid, _ = await subscribe(fanout.bus, url=rec.url("huge"), events=["project.*"])
        endless_sid, _ = await subscribe(fanout.bus, url=rec.url("endless"), events=["project.*"])
        [event] = await publish_projects(fanout.bus, 1)

        async def recorded() -> bool:
            a = await attempts_of(settings, delivery_id(huge_sid, event.id))
            b = await attempts_of(settings, delivery_id(endless_sid, event.id))
            return bool(a and b)

        await wait_until(recorded, timeout=10)
        for sid in (huge_sid, endless_sid):
            [attempt] = await attempts_of(settings, delivery_id(sid, event.id))
            assert attempt["response_status"] == 200
            assert attempt["response_truncated"] is True
            assert len(attempt["response_body"]) == 65536
            assert attempt["latency_ms"] < 5000
            [delivery] = await deliveries_of(settings, sid)
            assert delivery["status"] == "succeeded"


async def test_refused_addresses_are_refused_at_delivery(
    start_service: StartService, settings: Settings
) -> None:
    async with receiver() as rec:
        # The receivers' addresses changed since creation: now a metadata address and
        # loopback outside the allowed 127.0.0.0/8.
        meta, six = await subscribe_outside_policy(
            start_service,
            urls=["http://169.254.169.254/latest", f"http://[::1]:{rec.port}/six"],
            events=["project.*"],
        )
        fanout = await start_service("webhook-fanout", **FANOUT_SETTINGS)
        sid, _ = await subscribe(fanout.bus, url=rec.url("ok"), events=["project.*"])
        [event] = await publish_projects(fanout.bus, 1)

        async def tried() -> bool:
            return all([await attempts_of(settings, delivery_id(s, event.id)) for s in (meta, six)])

        await wait_until(tried)
        for s, words in ((meta, "a cloud metadata address"), (six, "a loopback address")):
            attempt = (await attempts_of(settings, delivery_id(s, event.id)))[0]
            assert attempt["response_status"] is None
            assert attempt["error"].startswith("refused_address:")
            assert words in attempt["error"]
        assert not rec.at("six")
        await wait_until(lambda: _has(rec, "ok"))

        # A name resolving to an address outside the policy: refused before connecting.
        client = DeliveryClient(settings.with_(outbound_allow_cidrs=""))
        await client.open()
        try:
            result = await client.post(f"http://localhost:{rec.port}/named", headers={}, body=b"{}")
        finally:
            await client.close()
        assert result.outcome.error == "refused_address"
        assert "localhost resolves to" in (result.error or "")
        assert not rec.at("named")
        del sid


async def _has(rec: object, path: str) -> bool:
    return bool(rec.at(path))  # type: ignore[attr-defined]


async def test_send_test_and_replay(start_service: StartService, settings: Settings) -> None:
    fanout = await start_service("webhook-fanout", **FANOUT_SETTINGS)
    async with receiver() as rec:
        sid, secret = await subscribe(fanout.bus, url=rec.url("t"), events=["project.*"])
        status, latency, error, test_id = await operations.send_test(fanout, sid)
        assert (status, error) == (200, None) and latency is not None
        got = rec.at("t")[0]
        assert Webhook(secret).verify(got.body, got.headers)["type"] == "webhook.test"
        [test_delivery] = await deliveries_of(settings, sid)
        assert (test_delivery["id"], test_delivery["status"]) == (test_id, "succeeded")
        assert len(await attempts_of(settings, test_id)) == 1

        start = dt.datetime.now(dt.UTC)
        events = await publish_projects(fanout.bus, 3)

        async def sent() -> bool:
            found = await deliveries_of(settings, sid)
            return [d["status"] for d in found] == ["succeeded"] * 4

        await wait_until(sent)
        async with fanout.pool.acquire() as conn:
            queued = await operations.replay(conn, sid, start - dt.timedelta(seconds=5))
        assert queued == 3

        async def replayed() -> bool:
            return len(rec.at("t")) == 7

        await wait_until(replayed)
        ids = [json.loads(r.body)["id"] for r in rec.at("t")[4:]]
        assert ids == [e.id for e in events]


async def test_a_project_filter_receives_the_events_naming_only_a_repo_of_its_project(
    start_service: StartService, settings: Settings
) -> None:
    fanout = await start_service("webhook-fanout", **FANOUT_SETTINGS)
    mine, theirs = new_id(), new_id()

    async def publish(payload: EventPayload, aggregate: str) -> str:
        envelope, _ = await fanout.bus.publish(payload, aggregate=aggregate, actor="apikey:test")
        return envelope.id

    async def decided(repo: str) -> str:
        return await publish(
            ReleaseDecided(
                repo=repo,
                commit="a" * 40,
                revision=1,
                decision="SHIP",
                policy_version=0,
                evaluated_at=dt.datetime.now(dt.UTC),
            ),
            f"release:{repo}",
        )

    for project, repos in ((mine, ["Acme/Web"]), (theirs, ["acme/other"])):
        await publish(
            ProjectCreated(project_id=project, slug=f"p-{project[-8:]}", name="p", repos=repos),
            f"project:{project}",
        )
    async with receiver() as rec:
        sid, _ = await subscribe(
            fanout.bus, url=rec.url("mine"), events=["release.decided"], project_id=mine
        )
        ours = await decided("acme/WEB")  # the project's repo, spelled another way
        await decided("acme/other")  # another project's
        await fanout.runners["intake"].wait_for(await fanout.bus.last_sequence(), timeout=10)
        assert [d["event_id"] for d in await deliveries_of(settings, sid)] == [ours]

        # The project now lists the other repo too: its later events reach the subscription.
        await publish(
            ProjectUpdated(project_id=mine, repos=["Acme/Web", "acme/other"]), f"project:{mine}"
        )
        later = await decided("acme/other")
        await fanout.runners["intake"].wait_for(await fanout.bus.last_sequence(), timeout=10)
        assert [d["event_id"] for d in await deliveries_of(settings, sid)] == [ours, later]

        async def both_sent() -> bool:
            return len(rec.at("mine")) == 2

        await wait_until(both_sent)
        assert [json.loads(r.body)["id"] for r in rec.at("mine")] == [ours, later]
