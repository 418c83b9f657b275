"""Dead letters as an operator meets them on a running stack: the services' /health/ready
and GET /api/v1/releases/health say ``degraded`` naming the event, `gatehouse deadletters`
lists, retries and drops it (as a subprocess, with settings from the environment), and
health is ``ok`` again once nothing is outstanding."""

from __future__ import annotations

import asyncio
import json
import subprocess
from typing import Any

import aiohttp

from contracts.ids import new_id
from shared.service import Runtime
from shared.settings import Settings
from tests.conftest import StartService, wait_until
from tests.integration.audit_support import CLI, CLI_CWD, cli_env
from tests.integration.test_release_decision_support import gate_stack


async def _ready(runtime: Runtime) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{runtime.http_port}/health/ready") as resp,
    ):
        return resp.status, await resp.json()


async def _gatehouse(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [*CLI, "deadletters", *args],
        cwd=CLI_CWD,
        env=cli_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_health_says_degraded_until_the_dead_letters_are_answered(
    start_service: StartService, settings: Settings
) -> None:
    async with gate_stack(start_service) as g:
        decisions, scanner = g.decisions, g.s.scanner
        health = await g.call("GET", "/api/v1/releases/health")
        assert (health.body["status"], health.body["dead_letters"]) == ("ok", []), health.body

        # An event no projection can read, on a subject both the scanner and
        # release-decision follow.
        event_id = new_id()
        ack = await decisions.bus.js.publish(
            "scan.completed", b"\x00 not an event", headers={"Nats-Msg-Id": event_id}
        )
        seq = int(ack.seq)

        async def both_degraded() -> bool:
            return all([(await _ready(r))[1]["status"] == "degraded" for r in (decisions, scanner)])

        await wait_until(both_degraded, timeout=20)
        status, ready = await _ready(decisions)
        assert status == 200  # degraded still serves: see Runtime.readiness
        [projection] = [p for p in ready["checks"]["projections"].values() if "dead_letters" in p]
        assert projection["dead_letters"]["count"] == 1
        [named] = projection["dead_letters"]["newest"]
        assert (named["event_id"], named["stream_sequence"]) == (event_id, seq)
        assert named["id"].startswith("release-decision:")
        assert ready["checks"]["degraded"]

        health = await g.call("GET", "/api/v1/releases/health")
        assert health.status == 200, health.body
        assert (health.body["status"], health.body["ok"]) == ("degraded", False)
        named_by_health = {(d["service"], d["event_id"]) for d in health.body["dead_letters"]}
        assert named_by_health == {("release-decision", event_id), ("scanner", event_id)}

        listed = await _gatehouse(settings, "list", "--json")
        assert listed.returncode == 0, listed.stderr
        letters = json.loads(listed.stdout)
        # The scanner's scans and licensing read models both follow scan.completed.
        assert sorted((d["service"], d["projection"]) for d in letters) == [
            ("release-decision", "decisions"),
            ("scanner", "licensing"),
            ("scanner", "scans"),
        ]
        assert {(d["stream_sequence"], d["event_id"], d["state"]) for d in letters} == {
            (seq, event_id, "outstanding")
        }
        scans = next(d for d in letters if d["projection"] == "scans")
        text = await _gatehouse(settings, "list", "--service", "scanner")
        assert scans["id"] in text.stdout and event_id in text.stdout

        # A retry of an event that still cannot be read fails and says so.
        retried = await _gatehouse(settings, "retry", scans["id"], "--wait", "20")
        assert retried.returncode == 1, retried.stdout + retried.stderr
        assert "still failing" in retried.stdout
        unknown = await _gatehouse(settings, "drop", "scanner:999999")
        assert unknown.returncode == 2 and "not an outstanding dead letter" in unknown.stderr

        for letter in letters:
            dropped = await _gatehouse(settings, "drop", letter["id"])
            assert dropped.returncode == 0, dropped.stderr
        assert (await _ready(decisions))[1]["status"] == "ok"
        assert (await _ready(scanner))[1]["status"] == "ok"
        health = await g.call("GET", "/api/v1/releases/health")
        assert (health.body["status"], health.body["dead_letters"]) == ("ok", [])
        audit = await _gatehouse(settings, "list", "--resolved", "--json")
        assert {d["state"] for d in json.loads(audit.stdout)} == {"dropped"}
        assert "no outstanding dead letters" in (await _gatehouse(settings, "list")).stdout
