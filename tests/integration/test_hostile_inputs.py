"""Every route of the gateway, fed what a consumer's database or decoder cannot take.

For each route of the route table (the same table OpenAPI is built from): a NUL in each path
parameter (``%00``), in each query parameter and in each string of a body; integers beyond
bigint and datetimes whose UTC value leaves the years 1..9999 wherever a route takes one;
bodies nested 10,000 and 100,000 levels deep; bodies just over the size limit. Every answer
must be a 4xx problem+json with a ``code`` (never a 5xx), and the stream must not move:
nothing is published for a refused request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import msgspec
import pytest
from msgspec import inspect as mi

from contracts.events.identity import ApiKeyCreated
from contracts.rpc import scanner_licensing as licensing
from services.gateway.openapi import build_openapi, openapi_path
from services.gateway.routes import collect_routes
from services.gateway.routing import Route
from shared.errors import ValidationFailed
from shared.rpc import CallContext, call
from shared.service import Runtime
from tests.conftest import StartService
from tests.integration.test_gateway_support import NO_TOKEN, Api, Reply, gateway_api

BIG_INTS = (2**63, -(2**63) - 1)
BAD_DATETIMES = ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00")
DEPTHS = (10_000, 100_000)
# As written in the URL: NUL, invalid UTF-8, far longer than any name.
PATH_HOSTILE = ("a%00b", "a%FF%FEb", "x" * 3000)
BODY_LIMIT = 1_048_576
UPLOAD_LIMIT = 256 * 1024
WEBHOOK_SECRET = "sweep-secret"
_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")
_RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT")

# A valid body of each route taking JSON: its every leaf is replaced in turn by a hostile
# value of the same kind. Covering every string, integer and datetime field of the Struct.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/v1/api-keys"): {
        "name": "k",
        "roles": ["VIEWER"],
        "project": "sweep",
        "expires_at": "2099-01-01T00:00:00Z",
        "user": "sweeper",
    },
    ("PATCH", "/api/v1/findings/{finding_id}"): {
        "state": "not_affected",
        "justification": "code_not_reachable",
        "detail": "d",
    },
    ("POST", "/api/v1/projects/{project}/vulnerabilities/bulk-transition"): {
        "ids": ["f-1"],
        "state": "not_affected",
        "justification": "code_not_reachable",
        "detail": "d",
    },
    ("PUT", "/api/v1/license-policy"): {
        "allowed": ["MIT"],
        "conditional": ["LGPL-2.1-only"],
        "forbidden": ["GPL-3.0-only"],
        "default": "unknown",
    },
    ("PUT", "/api/admin/license-policies"): {
        "allowed": ["MIT"],
        "conditional": ["LGPL-2.1-only"],
        "forbidden": ["GPL-3.0-only"],
        "default": "unknown",
    },
    ("PUT", "/api/v1/projects/{project}/license-policy"): {
        "allowed": ["MIT"],
        "conditional": ["LGPL-2.1-only"],
        "forbidden": ["GPL-3.0-only"],
    },
    ("POST", "/api/v1/projects/{project}/license-policy/waivers"): {
        "license": "GPL-3.0-only",
        "reason": "r",
        "expires_at": "2099-01-01T00:00:00Z",
        "purl": "pkg:npm/x",
    },
    ("POST", "/api/v1/projects/{project}/service_accounts"): {
        "name": "bot",
        "description": "d",
        "roles": ["VIEWER"],
    },
    # expires_at and expires_in_days exclude each other; both are here so each gets its
    # hostile values (any one of them alone is refused too).
    ("POST", "/api/v1/projects/{project}/service_accounts/{sa}/tokens"): {
        "name": "t",
        "roles": ["VIEWER"],
        "expires_at": "2099-01-01T00:00:00Z",
        "expires_in_days": 30,
    },
    ("POST", "/api/v1/projects"): {
        "slug": "fresh",
        "name": "n",
        "description": "d",
        "default_branch": "main",
        "repos": ["acme/fresh"],
    },
    ("PATCH", "/api/v1/projects/{project}"): {
        "name": "n",
        "description": "d",
        "default_branch": "main",
        "repos": ["acme/sweep"],
    },
    ("POST", "/api/releases/{project}/releases/{version}"): {
        "repo": "acme/sweep",
        "commit": "a" * 40,
    },
    ("PUT", "/api/releases/{project}/environments/{env}"): {
        "protected": False,
        "workflow_url": "https://ci.example/deploy",
    },
    ("POST", "/api/releases/{project}/environments/{env}/deployments"): {
        "release_candidate_version": "1.0.0-rc1",
        "override": {"reason": "r"},
    },
    ("PATCH", "/api/releases/{project}/environments/{env}/deployments"): {
        "release_candidate_version": "1.0.0-rc1",
        "status": "success",
    },
    ("PUT", "/api/v1/releases/policy"): {
        "block_on_severity": ["HIGH"],
        "epss_threshold": 0.5,
        "max_snapshot_age_hours": 10,
    },
    ("POST", "/api/v1/releases/promote"): {
        "snapshot_id": "s-1",
        "target_status": "staging",
        "release_label": "v1",
        "metadata": {"k": "v", "n": 1, "when": "2030-01-01T00:00:00Z", "nested": {"a": [1, "b"]}},
        "override": {"reason": "r"},
    },
    ("POST", "/api/v1/users"): {
        "login": "someone",
        "name": "n",
        "emails": [{"email": "a@example.org"}],
    },
    ("POST", "/api/v1/users/{login}/emails"): {"email": "b@example.org"},
    ("POST", "/api/v1/user/gpg_keys"): {"armored_public_key": "k", "name": "n"},
    ("POST", "/api/v1/users/{login}/gpg_keys"): {"armored_public_key": "k", "name": "n"},
    ("POST", "/api/v1/user/ssh_signing_keys"): {"key": "k", "title": "t"},
    ("POST", "/api/v1/users/{login}/ssh_signing_keys"): {"key": "k", "title": "t"},
    ("PUT", "/api/v1/repos/{owner}/{repo}/git"): {
        "clone_url": "https://93.184.216.34/a.git",
        "default_branch": "main",
        "credential": "c",
    },
    ("POST", "/api/admin/webhooks"): {
        "url": "https://93.184.216.34/hook",
        "events": ["release.decided"],
        "project": "sweep",
        "description": "d",
        "format": "standard",
        "secret": "whsec_" + "QUJD" * 11,
    },
    ("PATCH", "/api/admin/webhooks/{id}"): {
        "url": "https://93.184.216.34/hook",
        "events": ["release.decided"],
        "project": "sweep",
        "description": "d",
        "format": "standard",
    },
    ("PUT", "/api/releases/{project}/environments/{env}/workflow"): {
        "format": "github_repository_dispatch",
        "ref": "main",
        "dispatch_event_type": "deploy",
        "github_token": "ghp_" + "x" * 36,
    },
    ("POST", "/api/releases/{project}/environments/{env}/workflow-secret"): {"grace_seconds": 60},
    ("PUT", "/api/releases/{project}/build-workflow"): {
        "url": "https://93.184.216.34/build",
        "format": "standard",
        "ref": "main",
        "dispatch_event_type": "build",
        "github_token": "ghp_" + "x" * 36,
    },
    ("POST", "/api/releases/{project}/build-workflow/secret"): {"grace_seconds": 60},
    ("POST", "/api/admin/webhooks/{id}/rotate-secret"): {
        "grace_seconds": 60,
        "secret": "whsec_" + "QUJD" * 11,
    },
    ("POST", "/api/v1/repos"): {
        "project_id": "sweep",
        "slug": "sweep-pypi",
        "format": "pypi",
        "visibility": "public",
        "description": "d",
        "quota_bytes": 1000,
        "quota_artifacts": 10,
    },
    ("PATCH", "/api/v1/repos/{id}"): {
        "visibility": "private",
        "description": "d",
        "quota_bytes": 1000,
        "quota_artifacts": 10,
    },
    ("POST", "/api/admin/security"): {
        "purl": "pkg:pypi/sweep",
        "versions": "vers:pypi/>=1.0",
        "format": "pypi",
        "reason": "r",
        "customer_message": "m",
        "blocked_until": "2099-01-01T00:00:00Z",
    },
    ("PATCH", "/api/admin/security/{block_id}"): {
        "versions": "vers:pypi/>=1.0",
        "reason": "r",
        "customer_message": "m",
        "blocked_until": "2099-01-01T00:00:00Z",
    },
    ("POST", "/api/v1/artifacts/{id}/promote"): {
        "to_repo": "sweep-pypi",
        "reason": "r",
        "override": True,
    },
    ("POST", "/api/v1/repos/{id:repo_[0-9a-f]+}/retention"): {
        "name": "nightly",
        "pattern": "**/*.whl",
        "keep_last": 3,
        "max_age_days": 30,
        "keep_pulled_days": 7,
    },
    ("PUT", "/api/v1/repos/{id:repo_[0-9a-f]+}/retention/{policy_id:ret_[0-9a-f]+}"): {
        "name": "nightly",
        "pattern": "**/*.whl",
        "keep_last": 3,
        "max_age_days": 30,
        "keep_pulled_days": 7,
    },
    ("POST", "/api/admin/quarantine/{artifact_id}/release"): {"reason": "r"},
    ("POST", "/api/admin/quarantine/{artifact_id}/reject"): {"reason": "r"},
}
# Required query parameters (the hostile value replaces one of them or comes beside them).
QUERIES: dict[str, dict[str, str]] = {
    "/api/v1/releases/decision": {"repo": "acme/sweep", "commit": "a" * 40},
    "/api/v1/releases/decision/history": {"repo": "acme/sweep"},
    "/api/v1/releases/decision/attestation": {"repo": "acme/sweep", "commit": "a" * 40},
    "/api/v1/trust/badge": {"repo": "acme/sweep"},
}
# Path parameters that name something real, so that a request gets past its lookups.
PATH_VALUES = {
    "project": "sweep",
    "version": "1.0.0-rc1",
    "env": "staging",
    "login": "sweeper",
    "email": "a@example.org",
    "owner": "acme",
    "repo": "sweep",
    "sa": "sweeper",
}
# Path parameters a route limits by a pattern (``{name:regex}``): a value it matches.
PATTERN_VALUES = {
    "{id:repo_[0-9a-f]+}": "repo_" + "0" * 32,
    "{policy_id:ret_[0-9a-f]+}": "ret_" + "0" * 32,
}


def _path(route: Route, **override: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        return (
            override.get(name)
            or PATTERN_VALUES.get(match.group(0))
            or PATH_VALUES.get(name)
            or str(uuid.UUID(int=1))
        )

    return _PARAM.sub(value, route.path)


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, (*path, index))
    else:
        yield path, value


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = json.loads(json.dumps(value))
    target = copy
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return copy


def hostile_bodies(base: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(what, body): each leaf of ``base`` replaced by the hostile values of its kind, and
    NUL in an object key."""
    for path, leaf in _leaves(base):
        where = ".".join(map(str, path))
        if isinstance(leaf, str):
            yield f"NUL in {where}", _replaced(base, path, leaf + "\x00")
            if _RFC3339.match(leaf):
                for moment in BAD_DATETIMES:
                    yield f"{moment} in {where}", _replaced(base, path, moment)
        elif isinstance(leaf, int) and not isinstance(leaf, bool):
            for number in BIG_INTS:
                yield f"{number} in {where}", _replaced(base, path, number)
    for path, leaf in _leaves(base):
        if len(path) >= 2 and isinstance(path[-2], str) and isinstance(leaf, str | int):
            parent = path[:-1]
            container = base
            for key in parent:
                container = container[key]
            if isinstance(container, dict) and not isinstance(container.get(path[-1]), list):
                yield (
                    f"NUL in a key of {'.'.join(map(str, parent))}",
                    _replaced(base, parent, {**container, "k\x00": leaf}),
                )
                break


def _kinds(annotation: Any) -> set[str]:
    info = mi.type_info(annotation)
    pending, kinds = [info], set()
    while pending:
        item = pending.pop()
        if isinstance(item, mi.Metadata):
            pending.append(item.type)
        elif isinstance(item, mi.UnionType):
            pending.extend(item.types)
        elif isinstance(item, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
            pending.append(item.item_type)
        elif isinstance(item, mi.IntType):
            kinds.add("int")
        elif isinstance(item, mi.DateTimeType):
            kinds.add("datetime")
    return kinds


def hostile_queries(route: Route) -> Iterator[tuple[str, dict[str, str]]]:
    assert route.query is not None
    base = QUERIES.get(route.path, {})
    for field in msgspec.structs.fields(route.query):
        name = field.encode_name
        kinds = _kinds(field.type)
        values = [base.get(name, "x") + "\x00"]
        if "int" in kinds:
            values += [str(n) for n in BIG_INTS]
        if "datetime" in kinds:
            values += list(BAD_DATETIMES)
        for value in values:
            yield f"{value!r} in ?{name}", {**base, name: value}


def deep_bodies() -> Iterator[tuple[str, bytes]]:
    for depth in DEPTHS:
        yield f"[ x {depth}", b"[" * depth + b"]" * depth
        yield f'{{"a": x {depth}', b'{"a":' * depth + b"1" + b"}" * depth


class Sweep:
    def __init__(self, api: Api) -> None:
        self.api = api
        self.tried = 0
        self.failures: list[str] = []
        document = build_openapi(collect_routes(), version="sweep")
        self.documented = {
            (route.method, route.path): set(
                document["paths"][openapi_path(route.path)][route.method.lower()]["responses"]
            )
            for route in collect_routes()
        }

    async def last_sequence(self) -> int:
        runtime: Runtime = self.api.runtime
        info = await runtime.bus.js.stream_info(runtime.bus.stream)
        return int(info.state.last_seq)

    async def refused(
        self,
        route: Route,
        what: str,
        path: str,
        *,
        status: int | None = None,
        code: str | None = None,
        answered: bool = False,
        **kwargs: Any,
    ) -> Reply:
        """Send one hostile request; record a failure unless it is a 4xx problem with a code
        (``status`` and ``code`` when given; with ``answered``, any answer but a 5xx) and
        the stream did not move."""
        self.tried += 1
        before = await self.last_sequence()
        reply = await self.api.call(route.method, path, **kwargs)
        after = await self.last_sequence()
        label = f"{route.method} {route.path} ({what})"
        if answered and reply.status < 500:
            ...  # any answer but a 5xx will do
        elif not 400 <= reply.status < 500:
            self.failures.append(f"{label}: {reply.status} {str(reply.body)[:300]}")
        elif route.method != "HEAD" and not (
            reply.headers.get("Content-Type", "").startswith("application/problem+json")
            and reply.code
        ):
            self.failures.append(f"{label}: {reply.status} without a problem code")
        elif (status or reply.status, code or reply.code) != (reply.status, reply.code):
            self.failures.append(f"{label}: {reply.status} {reply.code}, not {status} {code}")
        documented = self.documented.get((route.method, route.path), set())
        if reply.status >= 400 and str(reply.status) not in documented:
            self.failures.append(f"{label}: {reply.status} is not in its OpenAPI responses")
        if after != before:
            self.failures.append(f"{label}: published {after - before} event(s)")
        return reply


JSON = {"Content-Type": "application/json"}


def _webhook_headers(route: Route, body: bytes) -> dict[str, str]:
    if "github" in route.path:
        digest = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
        return {
            "Content-Type": "application/json",
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": f"sha256={digest}",
        }
    return {
        "Content-Type": "application/json",
        "X-Gitlab-Event": "Push Hook",
        "X-Gitlab-Event-UUID": str(uuid.uuid4()),
        "X-Gitlab-Token": WEBHOOK_SECRET,
    }


async def _prepare(api: Api) -> None:
    await api.new_project("sweep", repos=["acme/sweep"])
    reply = await api.call("POST", "/api/v1/users", json={"login": "sweeper", "name": "S"})
    assert reply.status == 201, reply.body
    reply = await api.call(
        "POST",
        "/api/v1/projects/sweep/service_accounts",
        json={"name": "sweeper", "roles": ["VIEWER"]},
    )
    assert reply.status == 201, reply.body


async def test_every_route_refuses_what_no_consumer_can_store(
    start_service: StartService,
) -> None:
    await start_service("audit")
    await start_service(
        "release-decision",
        github_webhook_secret=WEBHOOK_SECRET,
        gitlab_webhook_token=WEBHOOK_SECRET,
    )
    await start_service("scanner", max_upload_bytes=UPLOAD_LIMIT)
    await start_service("signature-verifier")
    await start_service("webhook-fanout")
    async with gateway_api(
        start_service, max_body_bytes=BODY_LIMIT, max_upload_bytes=UPLOAD_LIMIT
    ) as api:
        await _prepare(api)
        sweep = Sweep(api)
        routes = collect_routes()
        assert {(r.method, r.path) for r in routes if r.body is not None} == set(BODIES)
        for route in routes:
            token: Any = None if route.roles is not None else NO_TOKEN
            for param in _PARAM.findall(route.path):
                for value in PATH_HOSTILE:
                    await sweep.refused(
                        route,
                        f"{value[:12]} in {{{param}}}",
                        _path(route, **{param: value}),
                        token=token,
                    )
            if route.query is not None:
                for what, query in hostile_queries(route):
                    await sweep.refused(
                        route, what, f"{_path(route)}?{urlencode(query)}", token=token
                    )
                # Invalid UTF-8 is read as U+FFFD: a search may find nothing, but never fail.
                for field in msgspec.structs.fields(route.query):
                    query_string = urlencode(QUERIES.get(route.path, {}))
                    await sweep.refused(
                        route,
                        f"%FF in ?{field.encode_name}",
                        f"{_path(route)}?{query_string}&{field.encode_name}=a%FF%FEb",
                        token=token,
                        answered=True,
                    )
            if route.body is not None:
                for what, body in hostile_bodies(BODIES[(route.method, route.path)]):
                    await sweep.refused(route, what, _path(route), json=body)
                for what, raw in deep_bodies():
                    await sweep.refused(
                        route, what, _path(route), code="too_deep", data=raw, headers=JSON
                    )
                over = b'{"name": "' + b"x" * BODY_LIMIT + b'"}'
                await sweep.refused(
                    route, "over the size limit", _path(route), status=413, data=over, headers=JSON
                )
            if route.upload:
                limit = BODY_LIMIT if route.upload_limit is not None else UPLOAD_LIMIT
                headers = {"Content-Type": route.upload[0]}
                await sweep.refused(
                    route,
                    "over the upload limit",
                    _path(route),
                    status=413,
                    data=b"x" * (limit + 1),
                    headers=headers,
                    token=token,
                )
                if route.upload_limit is not None:  # webhooks: signed, then parsed
                    for what, raw in deep_bodies():
                        await sweep.refused(
                            route,
                            what,
                            _path(route),
                            code="too_deep",
                            data=raw,
                            headers=_webhook_headers(route, raw),
                            token=token,
                        )
        assert not sweep.failures, "\n".join(sweep.failures)
        assert sweep.tried > 300, sweep.tried
        print(f"hostile requests: {sweep.tried}")


async def test_a_nul_in_a_path_parameter_names_it(start_service: StartService) -> None:
    async with gateway_api(start_service) as api:
        reply = await api.call("GET", "/api/v1/projects/a%00b")
        assert (reply.status, reply.code) == (422, "validation_failed"), reply.body
        assert reply.body["errors"] == [
            {"field": "$.project", "message": reply.body["errors"][0]["message"], "in": "path"}
        ]


async def test_an_api_key_expiring_beyond_year_9999_in_utc_is_refused_unpublished(
    start_service: StartService,
) -> None:
    await start_service("audit")
    async with gateway_api(start_service) as api:
        runtime = api.runtime
        before = (await runtime.bus.js.stream_info(runtime.bus.stream)).state.last_seq
        for moment in BAD_DATETIMES:
            reply = await api.call(
                "POST",
                "/api/v1/api-keys",
                json={"name": "k", "roles": ["VIEWER"], "expires_at": moment},
            )
            assert (reply.status, reply.code) == (422, "validation_failed"), reply.body
            assert reply.body["errors"][0]["field"] == "$.expires_at"
        after = (await runtime.bus.js.stream_info(runtime.bus.stream)).state.last_seq
        assert after == before
        # An offset that keeps the UTC value in range is fine.
        fine = await api.call(
            "POST",
            "/api/v1/api-keys",
            json={"name": "fine", "roles": ["VIEWER"], "expires_at": "9999-12-31T23:59:59+14:00"},
        )
        assert fine.status == 201, fine.body
        expires = dt.datetime.fromisoformat(fine.body["expires_at"])
        assert expires.astimezone(dt.UTC).year == 9999
        # The audit log (once it holds the fine key) records no key for the refused ones.
        last = (await runtime.bus.js.stream_info(runtime.bus.stream)).state.last_seq
        audit = await api.call("GET", f"/api/v1/audit?type=apikey.created&min_sequence={last}")
        assert audit.status == 200, audit.body
        names = [item["event"]["data"]["name"] for item in audit.body["items"]]
        assert "fine" in names and "k" not in names, names


async def test_an_owner_refuses_a_command_that_skipped_the_gateway(
    start_service: StartService,
) -> None:
    """The scanner, asked directly over the bus to grant a waiver expiring after year 9999
    in UTC, answers 422 naming the field and publishes nothing (its projection could not
    have stored the event)."""
    await start_service("scanner")
    async with gateway_api(start_service) as api:
        project = await api.new_project("direct")
        runtime = api.runtime
        before = (await runtime.bus.js.stream_info(runtime.bus.stream)).state.last_seq
        minus_14 = dt.timezone(-dt.timedelta(hours=14))
        request = licensing.WaiverGrantRequest(
            project_id=project["id"],
            body=licensing.WaiverBody(
                license="GPL-3.0-only",
                reason="r",
                expires_at=dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=minus_14),
            ),
        )
        ctx = CallContext(request_id="direct", actor="apikey:direct", roles=("ADMIN",))
        with pytest.raises(ValidationFailed) as refused:
            await call(
                runtime.bus,
                licensing.SERVICE,
                licensing.WAIVER_GRANT,
                request,
                licensing.WaiverView,
                ctx=ctx,
                timeout=5,
            )
        assert refused.value.extra["errors"][0]["field"] == "$.body.expires_at"
        after = (await runtime.bus.js.stream_info(runtime.bus.stream)).state.last_seq
        assert after == before


async def test_the_gateway_never_publishes_an_event_no_consumer_could_store(
    start_service: StartService,
) -> None:
    """Behind the edge, the command writer checks the event itself before publishing it."""
    async with gateway_api(start_service) as api:
        runtime = api.runtime
        writer = runtime.state["gateway"].writer
        before = (await runtime.bus.js.stream_info(runtime.bus.stream)).state.last_seq
        minus_14 = dt.timezone(-dt.timedelta(hours=14))
        event = ApiKeyCreated(
            key_id=str(uuid.uuid4()),
            name="never",
            prefix="gh_x",
            token_sha256="0" * 64,
            roles=["VIEWER"],
            expires_at=dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=minus_14),
        )
        with pytest.raises(ValidationFailed) as refused:
            await writer.emit(event, aggregate="apikey:never", actor="test", correlation_id=None)
        assert refused.value.extra["errors"][0]["field"] == "$.expires_at"
        after = (await runtime.bus.js.stream_info(runtime.bus.stream)).state.last_seq
        assert after == before
