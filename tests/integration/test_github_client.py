"""The GitHub REST client against the stand-in server: headers, retries with backoff,
rate-limit waits (Retry-After, X-RateLimit-Reset, an announced exhaustion holding the
next call), and which failures are transient. Waits are recorded, not slept."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from services.release_decision.scm.adapters.github_client import GithubClient, GithubError
from tests.stand_ins.github import StandInGithub


@pytest.fixture
async def github() -> AsyncIterator[StandInGithub]:
    server = await StandInGithub().start()
    yield server
    await server.stop()


class Sleeper:
    def __init__(self) -> None:
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds))


async def _client(
    github: StandInGithub, session: aiohttp.ClientSession, sleeper: Sleeper, **kw: object
) -> GithubClient:
    return GithubClient(
        base_url=github.url,
        token=github.token,
        session=session,
        sleep=sleeper.sleep,
        **kw,  # type: ignore[arg-type]
    )


async def test_calls_carry_githubs_headers(github: StandInGithub) -> None:
    sleeper = Sleeper()
    async with aiohttp.ClientSession() as session:
        client = await _client(github, session, sleeper)
        comment_id = await client.create_comment("acme/app", 3, "hello")
        assert await client.update_comment("acme/app", comment_id, "bye") == comment_id
        assert [c["body"] for c in await client.issue_comments("acme/app", 3)] == ["bye"]
    first = github.calls[0]
    assert first.headers["Accept"] == "application/vnd.github+json"
    assert first.headers["X-GitHub-Api-Version"] == "2022-11-28"
    assert first.headers["Authorization"] == f"Bearer {github.token}"
    assert sleeper.slept == []


async def test_server_errors_are_retried_with_backoff_then_transient(github: StandInGithub) -> None:
    sleeper = Sleeper()
    async with aiohttp.ClientSession() as session:
        client = await _client(github, session, sleeper, backoff=(1.0, 2.0, 3.0))
        comment_id = await client.create_comment("acme/app", 1, "x")
        github.fail_next(2, status=503)
        assert await client.update_comment("acme/app", comment_id, "y") == comment_id
        assert sleeper.slept == [1, 2]
        github.fail_next(4, status=500)
        with pytest.raises(GithubError) as caught:
            await client.update_comment("acme/app", comment_id, "z")
        assert caught.value.transient
        assert [c["body"] for c in github.comments.values()] == ["y"]


async def test_a_comment_is_not_posted_twice_when_github_may_have_made_it(
    github: StandInGithub,
) -> None:
    """A 5xx after the POST may come from a GitHub that made the comment: posting it again
    would duplicate it. The call fails as transient at once (the job's next attempt looks
    for the comment first); a refusal GitHub did not act on (a rate limit) is retried."""
    sleeper = Sleeper()
    async with aiohttp.ClientSession() as session:
        client = await _client(github, session, sleeper)
        github.fail_after_next(1)
        with pytest.raises(GithubError) as caught:
            await client.create_comment("acme/app", 1, "x")
        assert caught.value.transient and caught.value.github_status == 502
        assert len(github.comments) == 1 and sleeper.slept == []
        github.fail_next(1, status=503)
        with pytest.raises(GithubError):
            await client.create_comment("acme/app", 1, "y")
        assert len(github.comments) == 1
        github.rate_limit_next(primary=False, seconds=2)
        assert await client.create_comment("acme/app", 1, "z") > 0
        assert len(github.comments) == 2 and sleeper.slept == [2]


async def test_rate_limits_are_waited_out_or_deferred(github: StandInGithub) -> None:
    sleeper = Sleeper()
    async with aiohttp.ClientSession() as session:
        client = await _client(github, session, sleeper, max_wait=30.0)
        github.rate_limit_next(primary=False, seconds=7)
        github.rate_limit_next(primary=True, seconds=5)
        assert await client.create_comment("acme/app", 1, "x") > 0
        assert sleeper.slept[0] == 7 and 5 <= sleeper.slept[1] <= 7
        github.rate_limit_next(primary=False, seconds=3600)
        with pytest.raises(GithubError) as caught:
            await client.create_comment("acme/app", 1, "y")
        assert caught.value.transient and caught.value.github_status == 429


async def test_an_exhausted_limit_holds_the_next_call(github: StandInGithub) -> None:
    sleeper = Sleeper()
    async with aiohttp.ClientSession() as session:
        client = await _client(github, session, sleeper)
        github.announce_exhausted(reset_in=20)
        await client.create_comment("acme/app", 1, "x")
        assert sleeper.slept == []
        await client.create_comment("acme/app", 1, "y")
        assert len(sleeper.slept) == 1 and 18 <= sleeper.slept[0] <= 20


async def test_client_errors_are_permanent(github: StandInGithub) -> None:
    sleeper = Sleeper()
    async with aiohttp.ClientSession() as session:
        client = GithubClient(
            base_url=github.url, token="wrong", session=session, sleep=sleeper.sleep
        )
        with pytest.raises(GithubError) as caught:
            await client.create_comment("acme/app", 1, "x")
        assert not caught.value.transient and caught.value.github_status == 401
        assert "Bad credentials" in caught.value.detail
        assert sleeper.slept == []
