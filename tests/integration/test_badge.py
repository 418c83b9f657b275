"""The trust badge over HTTP: Assured / Blocked / Unknown, HEAD, caching headers, and private
projects that look exactly like repos nobody knows."""

from __future__ import annotations

import datetime as dt
from typing import Any

from contracts.events.commits import CommitPushed
from tests.conftest import StartService, wait_until
from tests.integration.test_gateway_support import NO_TOKEN, gateway_api
from tests.integration.test_release_decision_support import CLEAN, Gate, gate_stack, sha

BADGE = "/api/v1/trust/badge"


async def badge(g: Gate, query: str, **kw: Any) -> Any:
    kw.setdefault("token", NO_TOKEN)
    return await g.call("GET", f"{BADGE}?{query}", **kw)


async def push_head(g: Gate, repo: str, commit: str) -> None:
    await g.decisions.bus.publish(
        CommitPushed(
            repo=repo,
            commit=commit,
            branch="main",
            source="github",
            head=True,
            pushed_at=dt.datetime.now(dt.UTC),
        ),
        aggregate=f"repo:{repo}",
        actor="system",
    )


def state(reply: Any) -> str:
    assert reply.status == 200, reply.body
    assert reply.headers["Content-Type"].startswith("image/svg+xml")
    assert 'role="img"' in reply.body and "<title>gatehouse: " in reply.body
    return str(reply.body.split("<title>gatehouse: ", 1)[1].split("<", 1)[0])


async def test_public_badge_follows_the_decision_and_head(start_service: StartService) -> None:
    async with gate_stack(start_service) as g:
        project = await g.project("acme/pub", badge="public")
        assert state(await badge(g, f"repo=acme/pub&commit={sha()}")) == "Unknown"
        blocked, clean = sha(), sha()
        await g.scan(project["slug"], "acme/pub", blocked)
        await g.scan(project["slug"], "acme/pub", clean, pkgs=CLEAN)
        await g.decided("acme/pub", blocked, decision="NO_SHIP")
        await g.decided("acme/pub", clean, decision="SHIP")
        reply = await badge(g, f"repo=acme/pub&commit={blocked}")
        assert state(reply) == "Blocked"
        assert reply.headers["Cache-Control"] == "public, max-age=60"
        assert reply.headers["Vary"] == "Authorization"
        assert state(await badge(g, f"repo=acme/pub&commit={clean}")) == "Assured"

        assert state(await badge(g, "repo=acme/pub")) == "Unknown"  # no head seen yet
        await push_head(g, "acme/pub", clean)

        async def head_assured() -> bool:
            return state(await badge(g, "repo=acme/pub&commit=HEAD")) == "Assured"

        await wait_until(head_assured)

        again = await badge(
            g, f"repo=acme/pub&commit={clean}", headers={"If-None-Match": reply.headers["ETag"]}
        )
        assert again.status == 200  # another state, another tag
        etag = (await badge(g, f"repo=acme/pub&commit={clean}")).headers["ETag"]
        cached = await badge(g, f"repo=acme/pub&commit={clean}", headers={"If-None-Match": etag})
        assert cached.status == 304 and cached.headers["ETag"] == etag and not cached.body
        head = await g.call("HEAD", f"{BADGE}?repo=acme/pub&commit={clean}", token=NO_TOKEN)
        assert head.status == 200 and head.body == "" and head.headers["ETag"] == etag


async def test_private_badge_is_indistinguishable_from_an_unknown_repo(
    start_service: StartService,
) -> None:
    async with gate_stack(start_service) as g:
        private = await g.project("acme/secret")  # badge defaults to private
        other = await g.project("acme/other")
        commit = sha()
        await g.scan(private["slug"], "acme/secret", commit, pkgs=CLEAN)
        await g.decided("acme/secret", commit, decision="SHIP")

        hidden = await badge(g, f"repo=acme/secret&commit={commit}")
        nobody = await badge(g, f"repo=acme/nowhere&commit={commit}")
        assert hidden.body == nobody.body and state(hidden) == "Unknown"
        for header in ("ETag", "Cache-Control", "Vary", "Content-Type", "Content-Length"):
            assert hidden.headers[header] == nobody.headers[header], header

        _, viewer = await g.s.api.new_key("VIEWER")
        seen = await badge(g, f"repo=acme/secret&commit={commit}", token=viewer)
        assert state(seen) == "Assured"
        assert seen.headers["Cache-Control"] == "private, max-age=60"
        _, scoped_elsewhere = await g.s.api.new_key("VIEWER", project=other["id"])
        _, scoped_here = await g.s.api.new_key("AUDITOR", project=private["id"])
        for token, expected in (
            (scoped_elsewhere, "Unknown"),
            (scoped_here, "Assured"),
            ("gh_not_a_real_token_0123456789abcdef", "Unknown"),
        ):
            reply = await badge(g, f"repo=acme/secret&commit={commit}", token=token)
            assert state(reply) == expected, token


async def test_badge_bad_input(start_service: StartService) -> None:
    async with gate_stack(start_service) as g:
        for query in ("", "repo=acme/x&commit=nothex", "repo=acme/x&extra=1", "repo=no%20slash"):
            reply = await badge(g, query)
            assert (reply.status, reply.code) == (422, "validation_failed"), query


async def test_badge_is_unknown_and_not_cached_while_decisions_cannot_be_asked(
    start_service: StartService,
) -> None:
    async with gateway_api(start_service) as api:  # no release-decision service running
        await api.new_project(repos=["acme/down"], badge="public")
        reply = await api.call("GET", f"{BADGE}?repo=acme/down&commit={sha()}", token=NO_TOKEN)
        assert reply.status == 200 and "gatehouse: Unknown" in reply.body
        assert reply.headers["Cache-Control"] == "no-store"
