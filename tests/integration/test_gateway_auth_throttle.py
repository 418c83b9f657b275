"""Failed authentications are throttled per client address, before the database is asked.

Before: 1,000 invalid tokens from one address were 1,000 database lookups (0.7 s), none
refused. Now, past ``auth_failure_burst`` failures (refilled at ``auth_failures_per_ip`` per
second), an address's unknown tokens get 429 ``too_many_failed_authentications`` with
``Retry-After`` and cost no lookup; a token the gateway has seen valid still works.
"""

from __future__ import annotations

import asyncio
import random
import string

from services.gateway.deps import DEPS_KEY, GatewayDeps
from tests.conftest import StartService
from tests.integration.test_gateway_support import Reply, gateway_api

BURST = 20
ATTEMPTS = 1_000
CONCURRENCY = 50


def invalid_token() -> str:
    """Well formed (so that only a lookup can tell), unknown."""
    return "gh_" + "".join(random.choices(string.ascii_letters + string.digits, k=43))


async def test_a_thousand_invalid_tokens_cost_a_bounded_number_of_lookups(
    start_service: StartService,
) -> None:
    async with gateway_api(
        start_service, auth_failure_burst=BURST, auth_failures_per_ip=1.0
    ) as api:
        deps: GatewayDeps = api.runtime.state[DEPS_KEY]
        # The admin works before the attack: this replica has seen its token valid.
        assert (await api.call("GET", "/api/v1/me")).status == 200
        lookups_before = deps.key_cache.loads
        started = asyncio.get_running_loop().time()

        replies: list[Reply] = []
        for _ in range(ATTEMPTS // CONCURRENCY):
            replies += await asyncio.gather(
                *(
                    api.call("GET", "/api/v1/projects", token=invalid_token())
                    for _ in range(CONCURRENCY)
                )
            )
        elapsed = asyncio.get_running_loop().time() - started

        statuses = [r.status for r in replies]
        assert set(statuses) <= {401, 429}, set(statuses)
        # What got through: the burst, the refill while the attack lasted, and the requests
        # already past the check when the burst ran out (at most one round of them).
        allowed = BURST + int(elapsed * 1.0) + 1 + CONCURRENCY
        assert statuses.count(401) <= allowed, (statuses.count(401), elapsed)
        assert statuses.count(429) >= ATTEMPTS - allowed
        lookups = deps.key_cache.loads - lookups_before
        assert lookups == statuses.count(401), (lookups, statuses.count(401))
        throttled = next(r for r in replies if r.status == 429)
        assert throttled.code == "too_many_failed_authentications", throttled.body
        assert int(throttled.headers["Retry-After"]) >= 1
        assert throttled.headers["Content-Type"].startswith("application/problem+json")

        # A token this replica has seen valid still works from the throttled address.
        assert (await api.call("GET", "/api/v1/me")).status == 200
        assert (await api.call("GET", "/api/v1/projects")).status == 200
