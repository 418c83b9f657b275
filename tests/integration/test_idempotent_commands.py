"""A request with an Idempotency-Key is a command that runs once, even when the gateway lost
its answer (a 5xx, a crash, an expired key): the retry runs again and the owner answers what
the first attempt made. The kill -9 variants are in ``test_idempotency_crash``."""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg

from contracts.events.identity import ProjectCreated
from services.gateway.adapters.read_model import find_project
from services.gateway.deps import DEPS_KEY, GatewayDeps
from shared.applied_commands import AppliedCommand
from shared.bus import Bus
from shared.commands import command_event_id, command_id_for
from shared.settings import Settings
from tests.conftest import StartService
from tests.integration.test_gateway_support import Api, gateway_api
from tests.integration.test_scan_support import cyclonedx_json, subject_counts


async def _forget_answers(api: Api) -> None:
    """What a 5xx, a crash before storing, or the 24 h expiry leaves: no stored answer."""
    conn = await asyncpg.connect(api.runtime.settings.database_url)
    try:
        await conn.execute("DELETE FROM gateway.idempotency_keys")
    finally:
        await conn.close()


async def test_a_duplicate_publish_answers_the_original_sequence(settings: Settings) -> None:
    bus = await Bus.connect(settings, name="test")
    try:
        await bus.ensure_stream()
        payload = ProjectCreated(project_id="p1", slug="p1", name="P")
        event_id = str(uuid.uuid4())
        first = await bus.publish_acked(
            payload, aggregate="project:p1", actor="t", event_id=event_id
        )
        other = await bus.publish_acked(payload, aggregate="project:p1", actor="t")
        again = await bus.publish_acked(
            payload, aggregate="project:p1", actor="t", event_id=event_id
        )
        assert (first.duplicate, other.duplicate) == (False, False)
        assert again.duplicate and again.sequence == first.sequence < other.sequence
        assert await bus.last_sequence() == other.sequence
    finally:
        await bus.close()


def test_command_and_event_ids_are_stable_and_distinct() -> None:
    cid = command_id_for(principal="apikey:1", key="k", fingerprint="f")
    assert cid == command_id_for(principal="apikey:1", key="k", fingerprint="f")
    assert cid != command_id_for(principal="apikey:2", key="k", fingerprint="f")
    assert cid != command_id_for(principal="apikey:1", key="k", fingerprint="g")
    ids = {command_event_id(cid, n, t) for n in (0, 1) for t in ("a.b", "a.c")}
    assert len(ids) == 4 and command_event_id(cid, 0, "a.b") in ids


async def test_a_rerun_of_a_project_creation_answers_the_first_project(
    start_service: StartService,
) -> None:
    async with gateway_api(start_service) as api:
        key = {"Idempotency-Key": "create-once"}
        body = {"slug": f"once-{uuid.uuid4().hex[:6]}", "name": "Once"}
        first = await api.call("POST", "/api/v1/projects", json=body, headers=key)
        assert first.status == 201
        await _forget_answers(api)
        again = await api.call("POST", "/api/v1/projects", json=body, headers=key)
        # Ran again (not a stored replay), found the first attempt's project: not slug_taken.
        assert again.status == 201, again.body
        assert "Idempotent-Replayed" not in again.headers
        assert again.body == first.body
        assert again.headers["Location"] == first.headers["Location"]
        assert await subject_counts(api.runtime, "project.>") == {"project.created": 1}
        # The same body under another key is another command: that one is refused.
        other = await api.call(
            "POST", "/api/v1/projects", json=body, headers={"Idempotency-Key": "other"}
        )
        assert (other.status, other.code) == (409, "slug_taken")
        # And without a key nothing changes: a request is just run.
        plain = await api.call("POST", "/api/v1/projects", json=body)
        assert (plain.status, plain.code) == (409, "slug_taken")


async def test_a_rerun_of_a_key_creation_answers_the_first_key_without_its_token(
    start_service: StartService,
) -> None:
    async with gateway_api(start_service) as api:
        key = {"Idempotency-Key": "key-once"}
        body = {"name": "ci", "roles": ["VIEWER"]}
        created_before = (await subject_counts(api.runtime, "apikey.>"))["apikey.created"]
        first = await api.call("POST", "/api/v1/api-keys", json=body, headers=key)
        assert first.status == 201 and first.body["token"]
        await _forget_answers(api)
        again = await api.call("POST", "/api/v1/api-keys", json=body, headers=key)
        assert again.status == 201, again.body
        assert again.body == {**first.body, "token": None}
        assert again.headers["Location"] == first.headers["Location"]
        counts = await subject_counts(api.runtime, "apikey.>")
        assert counts["apikey.created"] == created_before + 1


async def test_a_rerun_of_an_upload_answers_the_first_scan(start_service: StartService) -> None:
    async with gateway_api(start_service) as api:
        await start_service("scanner")
        project = await api.new_project()
        path = f"/api/v1/projects/{project['slug']}/sboms"
        headers = {"Content-Type": "application/json", "Idempotency-Key": "upload-once"}
        first = await api.call("POST", path, data=cyclonedx_json(), headers=headers)
        assert first.status == 202, first.body
        await _forget_answers(api)
        again = await api.call("POST", path, data=cyclonedx_json(), headers=headers)
        assert again.status == 202, again.body
        assert again.body == first.body
        assert again.headers["Location"] == first.headers["Location"]
        counts = await subject_counts(api.runtime, "scan.queued")
        assert counts == {"scan.queued": 1}


async def test_an_attempt_that_republishes_a_concurrent_attempts_event_answers_its_outcome(
    start_service: StartService,
) -> None:
    """Two attempts of one command at once (a retry that took over while the first was
    still running): the second's event is dropped by JetStream, and it answers the first's."""
    runtime = await start_service("gateway")
    deps: GatewayDeps = runtime.state[DEPS_KEY]
    command_id = command_id_for(principal="apikey:t", key="k", fingerprint="f")
    mine = ProjectCreated(project_id="mine", slug="mine", name="M")
    theirs = ProjectCreated(project_id="theirs", slug="theirs", name="T")
    answers: list[str] = []

    async def first() -> str:
        # The other attempt publishes the command's first event after our check found nothing.
        await runtime.bus.publish_acked(
            theirs,
            aggregate="project:theirs",
            actor="apikey:t",
            event_id=command_event_id(command_id, 0, theirs.event_type),
            command_id=command_id,
        )
        await deps.writer.emit(
            mine, aggregate="project:mine", actor="apikey:t", correlation_id=None
        )
        answers.append("first")
        return "mine"

    async def again(applied: AppliedCommand) -> str:
        answers.append("again")
        return applied.aggregate_id

    assert await deps.writer.once(command_id, first=first, again=again) == "theirs"
    assert answers == ["again"]
    assert await subject_counts(runtime, "project.>") == {"project.created": 1}
    assert await find_project(deps.pool, "mine") is None


async def test_a_rerun_of_a_user_creation_answers_the_first_user(
    start_service: StartService,
) -> None:
    async with gateway_api(start_service) as api:
        key = {"Idempotency-Key": "user-once"}
        body = {"login": "ada", "name": "Ada", "emails": [{"email": "ada@example.org"}]}
        first = await api.call("POST", "/api/v1/users", json=body, headers=key)
        assert first.status == 201, first.body
        await _forget_answers(api)
        again = await api.call("POST", "/api/v1/users", json=body, headers=key)
        assert again.status == 201, again.body  # not login_taken
        assert again.body == first.body
        assert await subject_counts(api.runtime, "user.>") == {"user.created": 1}


async def test_a_rerun_of_a_waiver_grant_answers_the_first_waiver(
    start_service: StartService,
) -> None:
    async with gateway_api(start_service) as api:
        await start_service("scanner")
        project = await api.new_project()
        path = f"/api/v1/projects/{project['slug']}/license-policy/waivers"
        key = {"Idempotency-Key": "waiver-once"}
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
        body = {"license": "GPL-3.0-only", "reason": "legal", "expires_at": expires.isoformat()}
        first = await api.call("POST", path, json=body, headers=key)
        assert first.status == 201, first.body
        await _forget_answers(api)
        again = await api.call("POST", path, json=body, headers=key)
        assert again.status == 201, again.body
        assert again.body == first.body
        counts = await subject_counts(api.runtime, "license.>")
        assert counts == {"license.waiver-granted": 1}
