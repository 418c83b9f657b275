"""After a fault: wait until the stack has caught up, then hold every write of a burst
against the stream (the system of record) and the read models (through the API).

* acknowledged (2xx) → present exactly once in the stream and in the read model, with the
  id the 2xx answered; an acknowledged scan ends ``succeeded`` and its commit is decided;
* not acknowledged → absent, or present exactly once and complete (in the stream *and* the
  read model);
* nothing of the burst's tag that was never requested (phantom);
* the audit log holds every event of the stream once, and its hash chain verifies.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import msgspec
import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from contracts.envelope import RawEnvelope
from tests.faults.burst import Burst, Client, Intent
from tests.faults.stack import STREAM, Stack

CATCH_UP_WITHIN_SECONDS = 90.0
FINISHED_SCAN = {"succeeded", "failed", "cancelled"}
# The events a burst's writes are recorded by.
RECORDED_BY = {"project": "project.created", "apikey": "apikey.created", "sbom": "scan.queued"}


@dataclass
class StreamFacts:
    messages: int
    keys: dict[str, Counter[str]]  # event type -> key -> how many events
    ids: dict[str, dict[str, str]]  # event type -> key -> the aggregate's id


async def read_stream(url: str, tag_commits: set[str]) -> StreamFacts:
    """Every recording event of the stream, by key (slug, key name, commit)."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream(timeout=10)
        info = await js.stream_info(STREAM)
        name = f"faults-{uuid.uuid4().hex[:8]}"
        await js.add_consumer(
            STREAM,
            ConsumerConfig(
                name=name,
                ack_policy=AckPolicy.NONE,
                deliver_policy=DeliverPolicy.ALL,
                filter_subjects=sorted(RECORDED_BY.values()),
                inactive_threshold=30.0,
                mem_storage=True,
            ),
        )
        sub = await js.pull_subscribe_bind(durable=name, stream=STREAM)
        keys: dict[str, Counter[str]] = {t: Counter() for t in RECORDED_BY.values()}
        ids: dict[str, dict[str, str]] = {t: {} for t in RECORDED_BY.values()}
        while True:
            pending = (await sub.consumer_info()).num_pending
            if not pending:
                break
            for msg in await sub.fetch(min(pending, 500), timeout=10):
                envelope = msgspec.json.decode(msg.data, type=RawEnvelope)
                data = msgspec.json.decode(envelope.data)
                key, ident = _key_of(envelope.type, data)
                if envelope.type == "scan.queued" and key not in tag_commits:
                    continue
                keys[envelope.type][key] += 1
                ids[envelope.type][key] = ident
        await js.delete_consumer(STREAM, name)
        return StreamFacts(messages=int(info.state.messages), keys=keys, ids=ids)
    finally:
        await nc.close()


def _key_of(event_type: str, data: dict[str, Any]) -> tuple[str, str]:
    if event_type == "project.created":
        return data["slug"], data["project_id"]
    if event_type == "apikey.created":
        return data["name"], data["key_id"]
    return str(data.get("commit")), data["scan_id"]


async def consumers_drained(url: str) -> bool:
    """Every durable consumer of the stream has delivered and had acked everything."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream(timeout=5)
        consumers = await js.consumers_info(STREAM)
        return all(
            not c.num_pending and not c.num_ack_pending
            for c in consumers
            if c.config.durable_name and not c.name.startswith("faults-")
        )
    finally:
        await nc.close()


async def projections_caught_up(stack: Stack, client: Client) -> bool:
    """Every service ready, every projection's leader at lag 0."""
    for name in stack.services:
        ready = await stack.ready(client.session, name)
        if ready is None:
            return False
        for projection in ready["checks"].get("projections", {}).values():
            if projection["leader"] and projection["lag"]:
                return False
    return True


async def audit_total(client: Client) -> int | None:
    try:
        status, body = await client.get("/api/v1/audit?page_size=1")
    except (OSError, TimeoutError):
        return None
    return int(body["total"]) if status == 200 else None


async def scans_finished(client: Client, burst: Burst) -> bool:
    for intent in burst.of("sbom"):
        if intent.acknowledged:
            status, body = await client.get(f"/api/v1/scans/{intent.ident}")
            if status != 200 or body["status"] not in FINISHED_SCAN:
                return False
    return True


async def wait_caught_up(stack: Stack, client: Client, burst: Burst) -> None:
    """Until the stack has digested everything: projections, consumers, scans, the audit."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CATCH_UP_WITHIN_SECONDS
    why = "nothing checked yet"
    while loop.time() < deadline:
        try:
            if not await projections_caught_up(stack, client):
                why = "a service is not ready or a projection lags"
            elif not await consumers_drained(stack.nats.url):
                why = "a consumer has pending or unacknowledged messages"
            elif not await scans_finished(client, burst):
                why = "an acknowledged scan has not finished"
            else:
                facts = await read_stream(stack.nats.url, set())
                total = await audit_total(client)
                if total == facts.messages:
                    return
                why = f"the audit holds {total} of {facts.messages} events"
        except (OSError, TimeoutError, nats.errors.Error) as exc:
            why = f"{type(exc).__name__}: {exc}"
        await asyncio.sleep(0.3)
    raise AssertionError(f"not caught up within {CATCH_UP_WITHIN_SECONDS:g}s: {why}")


@dataclass
class Tally:
    acknowledged: int = 0
    not_acknowledged: int = 0
    unacknowledged_present: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    phantom: list[str] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)
    audit_ok: bool = False
    audit_checked: int = 0

    @property
    def clean(self) -> bool:
        return (
            not (self.lost or self.duplicated or self.phantom or self.incomplete) and self.audit_ok
        )


async def read_model_keys(client: Client, burst: Burst) -> dict[str, Counter[str]]:
    """How many times each key of the burst shows in the read models (through the API)."""
    projects = await client.list_all("/api/v1/projects")
    keys = await client.list_all("/api/v1/api-keys")
    scans = await client.list_all(f"/api/v1/projects/{burst.project_slug}/scans")
    return {
        "project": Counter(p["slug"] for p in projects if p["slug"].startswith(burst.tag + "-")),
        "apikey": Counter(k["name"] for k in keys if k["name"].startswith(burst.tag + "-")),
        "sbom": Counter(str(s["commit"]) for s in scans),
    }


async def check(stack: Stack, client: Client, burst: Burst) -> Tally:
    tally = Tally()
    commits = {intent.key for intent in burst.of("sbom")}
    facts = await read_stream(stack.nats.url, commits)
    model = await read_model_keys(client, burst)
    wanted = {kind: {i.key for i in burst.of(kind)} for kind in RECORDED_BY}  # type: ignore[arg-type]
    wanted["project"].add(burst.project_slug)
    for intent in burst.intents:
        event_type = RECORDED_BY[intent.kind]
        in_stream = facts.keys[event_type][intent.key]
        in_model = model[intent.kind][intent.key]
        name = f"{intent.kind} {intent.key} (answers: {answers(intent)})"
        if in_stream > 1 or in_model > 1:
            tally.duplicated.append(f"{name}: {in_stream} events, {in_model} in the read model")
        if intent.acknowledged:
            tally.acknowledged += 1
            if not in_stream or not in_model:
                tally.lost.append(f"{name}: {in_stream} events, {in_model} in the read model")
            elif facts.ids[event_type][intent.key] != intent.ident:
                tally.lost.append(f"{name}: answered {intent.ident}, recorded another id")
            elif intent.kind == "sbom":
                await _check_scan(client, burst, intent, tally)
        else:
            tally.not_acknowledged += 1
            if in_stream or in_model:
                tally.unacknowledged_present += 1
                if bool(in_stream) != bool(in_model):
                    tally.incomplete.append(
                        f"{name} (not acknowledged): {in_stream} events, "
                        f"{in_model} in the read model"
                    )
    prefix = burst.tag + "-"
    for kind, event_type in RECORDED_BY.items():
        seen = set(model[kind]) | {
            k for k in facts.keys[event_type] if (k.startswith(prefix) if kind != "sbom" else True)
        }
        tally.phantom.extend(f"{kind} {k}" for k in sorted(seen - wanted[kind]))
    verification = await client.get_until_ok("/api/v1/audit/verify")
    tally.audit_ok = bool(verification["ok"]) and verification["checked"] == facts.messages
    tally.audit_checked = int(verification["checked"])
    return tally


def answers(intent: Intent) -> str:
    """The answers of its attempts, repeats folded: "no answer x3, 503 bus_unavailable, 201"."""
    folded: list[tuple[str, int]] = []
    for attempt in intent.attempts:
        text = f"{attempt.status or 'no answer'}{' ' + attempt.code if attempt.code else ''}"
        if folded and folded[-1][0] == text:
            folded[-1] = (text, folded[-1][1] + 1)
        else:
            folded.append((text, 1))
    return ", ".join(text if n == 1 else f"{text} x{n}" for text, n in folded)


async def _check_scan(client: Client, burst: Burst, intent: Intent, tally: Tally) -> None:
    """An acknowledged upload is scanned to the end and decided (release-decision heard it)."""
    scan = await client.get_until_ok(f"/api/v1/scans/{intent.ident}")
    if scan["status"] != "succeeded":
        tally.lost.append(f"sbom {intent.key}: scan {intent.ident} ended {scan['status']}")
        return
    decision = await client.get_until_ok(
        f"/api/v1/releases/decision?repo={burst.repo}&commit={intent.key}"
    )
    if not decision["revision"]:
        tally.lost.append(f"sbom {intent.key}: the commit was never decided")
