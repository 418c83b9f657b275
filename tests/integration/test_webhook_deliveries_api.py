"""The deliveries API through the gateway, against a real webhook-fanout, NATS, PostgreSQL
and a local receiver: the delivery log, redelivery, replay, the test send, bad input."""

from __future__ import annotations

import datetime as dt
import uuid

from aiohttp import web
from standardwebhooks import Webhook

from contracts.rpc import webhooks as rpc
from shared.rpc import CallContext, call
from tests.conftest import StartService
from tests.integration.release_candidates_support import events_of
from tests.integration.test_gateway_support import stream_count
from tests.integration.webhook_delivery_support import (
    Stack,
    deliveries_stack,
    delivery_row,
    receiver,
    seed_delivery,
    seed_event,
    statuses,
    subscribe,
    subscribe_outside_policy,
)

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def ago(minutes: int) -> dt.datetime:
    return NOW - dt.timedelta(minutes=minutes)


async def log_only(stack: Stack, path: str, events: tuple[str, ...] = ("release.*",)) -> str:
    """A disabled subscription: its seeded deliveries stay as seeded (no sender takes them)."""
    hook, _ = await subscribe(
        stack.fanout.bus, url=f"http://127.0.0.1:9/{path}", events=list(events), enabled=False
    )
    return hook


async def test_the_delivery_log_lists_newest_first_filters_and_pages(
    start_service: StartService,
) -> None:
    async with deliveries_stack(start_service) as stack:
        api = stack.api
        hook = await log_only(stack, "hook")
        other = await log_only(stack, "other")
        ids = []
        for minutes, (event_type, status) in zip(
            (30, 20, 10),
            (
                ("release.decided", "dead"),
                ("release.promoted", "succeeded"),
                ("release.decided", "retrying"),
            ),
            strict=True,
        ):
            event = await seed_event(stack, event_type, occurred_at=ago(minutes))
            ids.append(
                await seed_delivery(
                    stack,
                    hook,
                    event,
                    status=status,
                    created_at=ago(minutes),
                    attempts=[
                        {"status": 500, "body": "x" * 5000},
                        {"status": None, "error": "timeout"},
                    ],
                )
            )
        foreign_event = await seed_event(stack, "release.decided", occurred_at=ago(5))
        foreign = await seed_delivery(stack, other, foreign_event, status="dead", created_at=ago(5))

        listed = await api.call("GET", f"/api/admin/webhooks/{hook}/deliveries")
        assert listed.status == 200, listed.body
        assert [d["id"] for d in listed.body["items"]] == ids[::-1]
        assert listed.body["next_cursor"] is None
        first = listed.body["items"][0]
        assert first["webhook_id"] == hook and first["status"] == "retrying"
        assert [a["attempt"] for a in first["attempts"]] == [1, 2]
        # A list cuts response bodies short and says so.
        assert len(first["attempts"][0]["response_body"]) == 1024
        assert first["attempts"][0]["response_truncated"] is True
        assert first["attempts"][1]["error"] == "timeout"

        page = await api.call("GET", f"/api/admin/webhooks/{hook}/deliveries?limit=2")
        assert [d["id"] for d in page.body["items"]] == [ids[2], ids[1]]
        rest = await api.call(
            "GET",
            f"/api/admin/webhooks/{hook}/deliveries?limit=2&cursor={page.body['next_cursor']}",
        )
        assert [d["id"] for d in rest.body["items"]] == [ids[0]]
        assert rest.body["next_cursor"] is None

        dead = await api.call("GET", f"/api/admin/webhooks/{hook}/deliveries?status=dead")
        assert [d["id"] for d in dead.body["items"]] == [ids[0]]
        promoted = await api.call(
            "GET", f"/api/admin/webhooks/{hook}/deliveries?event_type=release.promoted"
        )
        assert [d["id"] for d in promoted.body["items"]] == [ids[1]]

        one = await api.call("GET", f"/api/admin/webhooks/{hook}/deliveries/{ids[0]}")
        assert one.status == 200, one.body
        assert one.body["event_type"] == "release.decided"
        assert len(one.body["attempts"][0]["response_body"]) == 5000
        assert one.body["attempts"][0]["response_truncated"] is False
        assert one.body["attempts"][0]["request_headers"] == {"webhook-id": ids[0]}

        # Another subscription's delivery is not found under this one; nor an unknown hook.
        cross = await api.call("GET", f"/api/admin/webhooks/{hook}/deliveries/{foreign}")
        assert (cross.status, cross.code) == (404, "delivery_not_found"), cross.body
        unknown = "wh_" + uuid.uuid4().hex
        missing = await api.call("GET", f"/api/admin/webhooks/{unknown}/deliveries")
        assert (missing.status, missing.code) == (404, "webhook_not_found"), missing.body

        # ADMIN only.
        _, viewer = await api.new_key("VIEWER", "OPERATOR")
        refused = await api.call("GET", f"/api/admin/webhooks/{hook}/deliveries", token=viewer)
        assert refused.status == 403, refused.body


async def test_redeliver_requeues_the_delivery_and_is_audited_once(
    start_service: StartService,
) -> None:
    async with deliveries_stack(start_service) as stack:
        api = stack.api
        hook = await log_only(stack, "hook")
        event = await seed_event(stack, "release.decided", occurred_at=ago(60))
        delivery = await seed_delivery(
            stack, hook, event, status="dead", created_at=ago(60), attempts=[{"status": 500}] * 3
        )
        path = f"/api/admin/webhooks/{hook}/deliveries/{delivery}/redeliver"
        headers = {"Idempotency-Key": f"k-{uuid.uuid4().hex}"}
        reply = await api.call("POST", path, headers=headers)
        assert reply.status == 202, reply.body
        assert reply.body["status"] == "pending" and reply.body["id"] == delivery
        # The earlier attempts stay in the log.
        assert [a["attempt"] for a in reply.body["attempts"]] == [1, 2, 3]
        row = await delivery_row(stack, delivery)
        assert row["status"] == "pending" and row["attempts"] == 0
        assert row["next_attempt_at"] is not None

        again = await api.call("POST", path, headers=headers)
        assert again.status == 202 and again.headers.get("Idempotent-Replayed") == "true"
        requested = await events_of(stack.fanout, "webhook.redelivery-requested")
        assert [(e.payload.id, e.payload.delivery_id) for e in requested] == [(hook, delivery)]
        assert requested[0].envelope.actor.startswith("apikey:")

        # Read at once: the log shows it pending.
        shown = await api.call("GET", f"/api/admin/webhooks/{hook}/deliveries/{delivery}")
        assert shown.body["status"] == "pending"

        # A delivery being sent right now is not taken from its sender.
        conn = await stack.sql()
        try:
            # Another sender leased the stretch of the subscription's queue holding it.
            await conn.execute(
                "INSERT INTO webhook_fanout.subscription_leases"
                " (subscription_id, owner, until, first_seq, last_seq)"
                " SELECT subscription_id, 'x', now() + interval '1 minute', stream_seq,"
                " stream_seq FROM webhook_fanout.deliveries WHERE id = $1",
                uuid.UUID(delivery),
            )
        finally:
            await conn.close()
        before = await stream_count(api.runtime)
        busy = await api.call("POST", path)
        assert (busy.status, busy.code) == (409, "delivery_in_flight"), busy.body

        unknown = await api.call(
            "POST", f"/api/admin/webhooks/{hook}/deliveries/{uuid.uuid4()}/redeliver"
        )
        assert (unknown.status, unknown.code) == (404, "delivery_not_found"), unknown.body
        assert await stream_count(api.runtime) == before


async def test_replay_requeues_the_range_and_queues_what_was_never_delivered(
    start_service: StartService,
) -> None:
    async with deliveries_stack(start_service) as stack:
        api = stack.api
        hook = await log_only(stack, "hook", events=("release.*",))
        # Recorded by the intake after the subscription was created.
        delivered = await seed_event(stack, "release.decided", occurred_at=ago(50))
        done = await seed_delivery(stack, hook, delivered, status="succeeded", created_at=ago(50))
        never = await seed_event(stack, "release.promoted", occurred_at=ago(40))
        await seed_event(stack, "finding.created", occurred_at=ago(30))  # not subscribed
        await seed_event(stack, "release.decided", occurred_at=ago(5))  # after the range
        since, until = ago(55).isoformat(), ago(20).isoformat()
        query = f"since={since}&until={until}".replace("+", "%2B")
        reply = await api.call("POST", f"/api/admin/webhooks/{hook}/replay?{query}")
        assert reply.status == 202, reply.body
        assert reply.body == {"webhook_id": hook, "queued": 2}

        assert (await delivery_row(stack, done))["status"] == "pending"
        listed = await api.call("GET", f"/api/admin/webhooks/{hook}/deliveries?status=pending")
        assert {d["event_id"] for d in listed.body["items"]} == {delivered, never}
        requested = await events_of(stack.fanout, "webhook.redelivery-requested")
        assert len(requested) == 1
        assert requested[0].payload.since == ago(55) and requested[0].payload.until == ago(20)
        assert requested[0].payload.delivery_id is None

        # Without until: up to now (the later event too, now a delivery as well).
        open_ended = await api.call(
            "POST",
            f"/api/admin/webhooks/{hook}/replay?since={ago(55).isoformat()}".replace("+", "%2B"),
        )
        assert open_ended.body["queued"] == 3, open_ended.body


async def test_the_test_send_reaches_the_receiver_signed_and_is_recorded(
    start_service: StartService,
) -> None:
    async with deliveries_stack(start_service) as stack, receiver() as hooked:
        api = stack.api
        hooked.script["hook"] = statuses(then=204)
        hook, secret = await subscribe(
            stack.fanout.bus, url=hooked.url("hook"), events=["release.*"]
        )
        reply = await api.call("POST", f"/api/admin/webhooks/{hook}/test")
        assert reply.status == 200, reply.body
        assert reply.body["ok"] is True and reply.body["response_status"] == 204
        assert reply.body["latency_ms"] > 0 and reply.body["error"] is None
        assert len(hooked.at("hook")) == 1
        got = hooked.at("hook")[0]
        # The receiver verifies it with the reference Standard Webhooks library.
        event = Webhook(secret).verify(got.body, got.headers)
        assert event["type"] == "webhook.test" and event["data"]["id"] == hook
        assert got.headers["webhook-id"] == reply.body["delivery_id"]

        shown = await api.call(
            "GET", f"/api/admin/webhooks/{hook}/deliveries/{reply.body['delivery_id']}"
        )
        assert shown.body["status"] == "succeeded" and shown.body["event_type"] == "webhook.test"
        assert shown.body["attempts"][0]["response_status"] == 204
        assert "webhook-signature" in shown.body["attempts"][0]["request_headers"]


async def test_the_test_send_reports_failures_without_retrying(
    start_service: StartService,
) -> None:
    async def angry(_request: web.Request) -> web.StreamResponse:
        return web.Response(status=500, body=b"\x00boom" + b"y" * 100_000)

    # A receiver at a private address that the fan-out under test no longer allows.
    [private] = await subscribe_outside_policy(
        start_service, urls=["http://10.255.255.1/hook"], events=["release.*"]
    )
    async with deliveries_stack(start_service) as stack, receiver() as hooked:
        api = stack.api
        hooked.script["hook"] = angry
        hook, _ = await subscribe(
            stack.fanout.bus, url=hooked.url("hook"), events=["release.*"], format="orbitalreg"
        )
        reply = await api.call("POST", f"/api/admin/webhooks/{hook}/test")
        assert reply.status == 200, reply.body
        assert reply.body["ok"] is False and reply.body["response_status"] == 500
        assert "X-Orbitalreg-Signature" in hooked.at("hook")[0].headers
        shown = await api.call(
            "GET", f"/api/admin/webhooks/{hook}/deliveries/{reply.body['delivery_id']}"
        )
        attempt = shown.body["attempts"][0]
        assert shown.body["status"] == "cancelled"
        assert attempt["response_truncated"] is True and len(attempt["response_body"]) == 65536
        assert attempt["response_body"].startswith("\ufffdboom")
        assert len(hooked.at("hook")) == 1  # never retried

        # Never connected to: refused by the address policy at the send.
        refused = await api.call("POST", f"/api/admin/webhooks/{private}/test")
        assert refused.status == 200, refused.body
        assert refused.body["ok"] is False and refused.body["response_status"] is None
        assert refused.body["error"].startswith("refused_address: ")
        assert "private" in refused.body["error"]

        gone = await api.call("POST", f"/api/admin/webhooks/wh_{uuid.uuid4().hex}/test")
        assert (gone.status, gone.code) == (404, "webhook_not_found"), gone.body


async def test_bad_input_is_refused_precisely_and_publishes_nothing(
    start_service: StartService,
) -> None:
    async with deliveries_stack(start_service) as stack:
        api = stack.api
        hook = await log_only(stack, "hook")
        base = f"/api/admin/webhooks/{hook}"
        before = await stream_count(api.runtime)
        cases = [
            ("GET", f"{base}/deliveries/not-a-uuid", 422, "validation_failed"),
            ("POST", f"{base}/deliveries/not-a-uuid/redeliver", 422, "validation_failed"),
            ("GET", "/api/admin/webhooks/hook-1/deliveries", 422, "validation_failed"),
            ("POST", "/api/admin/webhooks/hook-1/test", 422, "validation_failed"),
            ("GET", f"{base}/deliveries?status=lost", 422, "validation_failed"),
            ("GET", f"{base}/deliveries?event_type=release%00x", 422, "validation_failed"),
            ("GET", f"{base}/deliveries?limit=9223372036854775808", 422, "validation_failed"),
            ("GET", f"{base}/deliveries?cursor=garbage", 422, "invalid_cursor"),
            ("GET", f"{base}/deliveries?event_type=" + "a" * 200, 422, "validation_failed"),
            ("POST", f"{base}/replay", 422, "validation_failed"),
            ("POST", f"{base}/replay?since=0001-01-01T00:00:00%2B01:00", 422, "validation_failed"),
            ("POST", f"{base}/replay?since=9999-12-31T23:59:59-01:00", 422, "validation_failed"),
            ("POST", f"{base}/replay?since=1700000000", 422, "validation_failed"),
            (
                "POST",
                f"{base}/replay?since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z",
                422,
                "invalid_time_range",
            ),
            ("POST", f"{base}/replay?since=2026-01-01T00:00:00Z%00", 422, "validation_failed"),
            ("GET", f"{base}/deliveries/{uuid.uuid4()}%00", 422, "validation_failed"),
        ]
        for method, path, status, code in cases:
            reply = await api.call(method, path)
            assert (reply.status, reply.code) == (status, code), (path, reply.body)
            assert reply.headers["Content-Type"].startswith("application/problem+json")
        assert await stream_count(api.runtime) == before


async def test_a_rerun_command_answers_as_the_first_and_publishes_nothing_more(
    start_service: StartService,
) -> None:
    """The owner's side of Idempotency-Key: a re-run after the gateway lost the answer
    carries the same command id and must not queue or publish a second time."""
    async with deliveries_stack(start_service) as stack:
        hook = await log_only(stack, "hook")
        event = await seed_event(stack, "release.decided", occurred_at=ago(30))
        await seed_delivery(stack, hook, event, status="dead", created_at=ago(30))
        ctx = CallContext(request_id="r1", actor="apikey:k", command_id=str(uuid.uuid4()))
        request = rpc.ReplayRequest(id=hook, since=ago(40), until=ago(10))
        replies = [
            await call(
                stack.fanout.bus,
                rpc.SERVICE,
                rpc.WEBHOOK_REPLAY,
                request,
                rpc.ReplayReply,
                ctx=ctx,
                timeout=10,
            )
            for _ in range(2)
        ]
        assert [r.queued for r in replies] == [1, 1]
        assert len(await events_of(stack.fanout, "webhook.redelivery-requested")) == 1
