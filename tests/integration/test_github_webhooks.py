"""GitHub webhooks over HTTP: signed deliveries become events once; everything else is
refused precisely and records nothing."""

from __future__ import annotations

import asyncio
import json
import os
import urllib.parse
import uuid

from prometheus_client import REGISTRY

from tests.conftest import StartService
from tests.integration.test_gateway_support import stream_count
from tests.integration.test_github_support import (
    SECRET,
    check_run_payload,
    events_of,
    pull_payload,
    push_payload,
    repo_name,
    scm_stack,
    sha,
    sign,
)


def _refused() -> float:
    labels = {"provider": "github", "outcome": "unauthenticated"}
    return REGISTRY.get_sample_value("gatehouse_webhook_deliveries_total", labels) or 0.0


async def test_push_becomes_commit_pushed_per_commit_once(start_service: StartService) -> None:
    async with scm_stack(start_service) as stack:
        repo = repo_name()
        commits = [sha(f"c{i}") for i in range(3)]
        delivery = str(uuid.uuid4())
        reply = await stack.deliver("push", push_payload(repo, commits), delivery=delivery)
        assert reply.status == 200, reply.body
        assert reply.body["status"] == "recorded" and reply.body["published"] == 3
        assert reply.body["duplicate"] is False

        again = await stack.deliver("push", push_payload(repo, commits), delivery=delivery)
        assert again.status == 200 and again.body["duplicate"] is True
        assert again.body["status"] == "duplicate" and again.body["published"] == 0

        pushed = await events_of(stack, "commit.pushed")
        assert [(p.commit, p.head, p.branch, p.source) for p in pushed] == [  # type: ignore[attr-defined]
            (commits[0], False, "main", "github"),
            (commits[1], False, "main", "github"),
            (commits[2], True, "main", "github"),
        ]
        assert all(p.delivery_id == delivery for p in pushed)  # type: ignore[attr-defined]
        received = await events_of(stack, "scm.delivery-received")
        assert len(received) == 1


async def test_ping_tag_and_unsupported_events(start_service: StartService) -> None:
    async with scm_stack(start_service) as stack:
        pong = await stack.deliver("ping", {"zen": "Keep it logically awesome.", "hook_id": 1})
        assert pong.status == 200 and pong.body["status"] == "pong"
        tag = await stack.deliver(
            "push", push_payload(repo_name(), [sha("t")], ref="refs/tags/v1.0.0")
        )
        assert tag.status == 202 and tag.body["status"] == "ignored"
        assert "not a branch" in tag.body["reason"]
        issues = await stack.deliver("issues", {"action": "opened"})
        assert issues.status == 202 and issues.body["status"] == "ignored"
        assert issues.body["action"] == "opened"
        other = await stack.deliver(
            "check_run", check_run_payload(repo_name(), sha("x"), [], name="CI")
        )
        assert other.status == 202 and "not Gatehouse's" in other.body["reason"]
        assert await events_of(stack, "commit.pushed") == []


async def test_form_encoded_delivery(start_service: StartService) -> None:
    async with scm_stack(start_service) as stack:
        repo = repo_name()
        document = json.dumps(push_payload(repo, [sha("f")]))
        body = urllib.parse.urlencode({"payload": document}).encode()
        reply = await stack.deliver(
            "push",
            None,
            body=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert reply.status == 200 and reply.body["published"] == 1, reply.body


async def test_bad_deliveries_record_nothing(start_service: StartService) -> None:
    async with scm_stack(start_service, webhook_max_body_bytes=4096) as stack:
        repo = repo_name()
        body = json.dumps(push_payload(repo, [sha("a")])).encode()
        before = await stream_count(stack.service)
        refused_before = _refused()

        wrong = await stack.deliver("push", None, body=body, signature=sign(body, "not-the-secret"))
        assert wrong.status == 401 and wrong.code == "invalid_signature"
        assert wrong.headers["Content-Type"].startswith("application/problem+json")
        missing = await stack.deliver("push", None, body=body, headers={"X-Hub-Signature-256": ""})
        assert missing.status == 401 and missing.code == "invalid_signature"
        sha1_style = await stack.deliver("push", None, body=body, signature="sha1=" + "0" * 40)
        assert sha1_style.status == 401
        # Signed over other bytes than those sent (a re-serialised body).
        tampered = await stack.deliver("push", None, body=body + b" ", signature=sign(body, SECRET))
        assert tampered.status == 401
        assert _refused() == refused_before + 4

        not_json = await stack.deliver("push", None, body=b"{not json")
        assert not_json.status == 400 and not_json.code == "invalid_json"
        wrong_shape = await stack.deliver("push", {"ref": "refs/heads/main", "after": "xyz"})
        assert wrong_shape.status == 422 and wrong_shape.code == "invalid_payload"
        no_event = await stack.deliver("push", None, body=body, headers={"X-GitHub-Event": ""})
        assert no_event.status == 400 and no_event.code == "missing_header"
        no_delivery = await stack.deliver(
            "push", None, body=body, headers={"X-GitHub-Delivery": ""}
        )
        assert no_delivery.status == 400 and no_delivery.code == "missing_header"
        big = json.dumps({**push_payload(repo, [sha("b")]), "pad": "x" * 5000}).encode()
        oversized = await stack.deliver("push", None, body=big)
        assert oversized.status == 413 and oversized.code == "payload_too_large"
        text = await stack.deliver("push", None, body=body, headers={"Content-Type": "text/plain"})
        assert text.status == 415

        assert await stream_count(stack.service) == before
        rows = await stack.fetch("SELECT count(*) AS n FROM release_decision.scm_deliveries")
        assert rows[0]["n"] == 0


async def test_concurrent_copies_of_one_delivery_publish_once(
    start_service: StartService,
) -> None:
    async with scm_stack(start_service) as stack:
        repo, delivery = repo_name(), str(uuid.uuid4())
        payload = push_payload(repo, [sha("x1"), sha("x2")])
        replies = await asyncio.gather(
            *(stack.deliver("push", payload, delivery=delivery) for _ in range(6))
        )
        assert sorted(r.body["status"] for r in replies) == ["duplicate"] * 5 + ["recorded"]
        assert len(await events_of(stack, "commit.pushed")) == 2


async def test_a_body_at_the_limit_that_does_not_compress_is_refused_cleanly(
    start_service: StartService,
) -> None:
    async with scm_stack(start_service, webhook_max_body_bytes=2_000_000) as stack:
        # Random bytes do not compress: base64 of them would not fit one bus message.
        body = os.urandom(1_500_000)
        reply = await stack.deliver("push", None, body=body)
        assert reply.status == 413 and reply.code == "payload_too_large"


async def test_what_the_projections_could_not_hold_is_refused_or_cut(
    start_service: StartService,
) -> None:
    """A signed delivery whose events would not decode was published, dead-lettered by the
    projections and so never recorded: not de-duplicated, and its commits never decided."""
    async with scm_stack(start_service) as stack:
        repo = repo_name()
        before = await stream_count(stack.service)
        not_utf8 = await stack.deliver("ping", None, body=b'{"zen": "\xff"}')
        assert not_utf8.status == 400 and not_utf8.code == "invalid_json"
        long_branch = push_payload(repo, [sha("l")], ref="refs/heads/" + "b" * 256)
        refused = await stack.deliver("push", long_branch)
        assert refused.status == 422 and refused.code == "invalid_payload"
        huge = pull_payload(repo, 1, sha("h"))
        huge["pull_request"]["number"] = huge["number"] = 2**40
        too_big = await stack.deliver("pull_request", huge)
        assert too_big.status == 422 and too_big.code == "invalid_payload"
        assert await stream_count(stack.service) == before

        delivery = str(uuid.uuid4())
        odd = await stack.deliver("issues", {"action": "x" * 300}, delivery=delivery)
        assert odd.status == 202 and odd.body["action"] == "x" * 100
        again = await stack.deliver("issues", {"action": "x" * 300}, delivery=delivery)
        assert again.status == 200 and again.body["status"] == "duplicate"
        rows = await stack.fetch("SELECT count(*) AS n FROM release_decision.scm_deliveries")
        assert rows[0]["n"] == 1


async def test_a_signed_body_replayed_under_another_delivery_id_is_a_duplicate(
    start_service: StartService,
) -> None:
    """X-GitHub-Delivery is not covered by the signature: a captured push sent again under a
    new id would be recorded again (an old head moving the branch back). GitHub redelivers
    under the same id, so the same body under another id is a replay."""
    async with scm_stack(start_service) as stack:
        repo = repo_name()
        old_push = json.dumps(push_payload(repo, [sha("old")])).encode()
        first = str(uuid.uuid4())
        assert (await stack.deliver("push", None, body=old_push, delivery=first)).status == 200
        newer = await stack.deliver("push", push_payload(repo, [sha("new")]))
        assert newer.body["status"] == "recorded"
        before = await stream_count(stack.service)

        replayed = await stack.deliver("push", None, body=old_push, delivery=str(uuid.uuid4()))
        assert replayed.status == 200 and replayed.body["status"] == "duplicate"
        assert replayed.body["duplicate"] is True and replayed.body["published"] == 0
        assert first in replayed.body["reason"]
        assert await stream_count(stack.service) == before
        pushed = await events_of(stack, "commit.pushed")
        assert [p.commit for p in pushed] == [sha("old"), sha("new")]  # type: ignore[attr-defined]
        rows = await stack.fetch(
            "SELECT count(DISTINCT body_digest) AS n FROM release_decision.scm_deliveries"
        )
        assert rows[0]["n"] == 2
