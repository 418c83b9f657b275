"""Pure gateway rules: tokens, access, ETags, rate buckets, idempotency, project changes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import string

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.events.identity import ProjectUpdated
from services.gateway.domain import access, etag, idempotency, ratelimit, tokens
from services.gateway.domain.errors import (
    EtagMismatch,
    FieldInvalid,
    InvalidToken,
    MissingRole,
    MissingToken,
    ProjectScopeForbidden,
    TokenExpired,
    TokenRevoked,
)
from services.gateway.domain.projects import (
    ProjectState,
    check_new_slug,
    check_repos,
    looks_like_id,
    project_changes,
)
from services.gateway.domain.users import check_distinct_emails, email_key, login_key
from services.gateway.dto import ProjectPatch

NOW = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


# ---- tokens --------------------------------------------------------------------------------
@given(st.binary(min_size=32, max_size=32))
def test_new_tokens_are_well_formed_base62_with_prefix(random: bytes) -> None:
    token = tokens.new_token(random)
    assert token.startswith("gh_") and len(token) == 46
    assert set(token[3:]) <= set(string.ascii_letters + string.digits)
    assert tokens.is_well_formed(token)


def test_distinct_random_bytes_give_distinct_tokens() -> None:
    assert tokens.new_token(b"\x00" * 32) != tokens.new_token(b"\x00" * 31 + b"\x01")


def test_new_token_needs_exactly_32_bytes() -> None:
    with pytest.raises(ValueError):
        tokens.new_token(b"short")


def test_token_hash_is_sha256_hex_and_prefix_is_short() -> None:
    token = tokens.new_token(bytes(range(32)))
    assert len(tokens.token_sha256(token)) == 64
    assert tokens.token_sha256(token) != tokens.token_sha256(token + "x")
    assert (
        token.startswith(tokens.display_prefix(token)) and len(tokens.display_prefix(token)) == 10
    )


@pytest.mark.parametrize("token", ["", "gh_", "gh_short", "xx_" + "a" * 40, "gh_" + "a" * 40 + "!"])
def test_malformed_tokens_are_refused(token: str) -> None:
    assert not tokens.is_well_formed(token)


# ---- access --------------------------------------------------------------------------------
@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer", "Bearer   "])
def test_missing_bearer_is_401_unauthorized_with_challenge(header: str | None) -> None:
    with pytest.raises(MissingToken) as caught:
        access.bearer_token(header)
    assert caught.value.status == 401 and caught.value.code == "unauthorized"
    assert caught.value.headers["WWW-Authenticate"].startswith("Bearer")


def test_malformed_bearer_is_401_unauthorized() -> None:
    with pytest.raises(InvalidToken) as caught:
        access.bearer_token("Bearer not-a-token")
    assert caught.value.code == "unauthorized"


def test_bearer_scheme_is_case_insensitive() -> None:
    token = "gh_" + "a" * 43
    assert access.bearer_token(f"bearer {token}") == token


def _key(**changes: object) -> access.StoredKey:
    fields: dict[str, object] = {
        "key_id": "k",
        "name": "n",
        "prefix": "gh_x",
        "roles": frozenset({"VIEWER"}),
        "project_id": None,
        "expires_at": None,
        "revoked_at": None,
        "bootstrap": False,
    }
    fields.update(changes)
    return access.StoredKey(**fields)  # type: ignore[arg-type]


def test_unknown_key_is_401_unauthorized() -> None:
    with pytest.raises(InvalidToken):
        access.usable_key(None, now=NOW)


def test_expired_key_has_its_own_code() -> None:
    with pytest.raises(TokenExpired) as caught:
        access.usable_key(_key(expires_at=NOW), now=NOW)
    assert caught.value.status == 401 and caught.value.code == "token_expired"
    assert access.usable_key(_key(expires_at=NOW + dt.timedelta(seconds=1)), now=NOW)


def test_revocation_wins_over_expiry() -> None:
    key = _key(expires_at=NOW - dt.timedelta(days=1), revoked_at=NOW - dt.timedelta(days=2))
    with pytest.raises(TokenRevoked) as caught:
        access.usable_key(key, now=NOW)
    assert caught.value.code == "token_revoked"


def test_roles_need_one_in_common() -> None:
    access.require_roles(frozenset({"VIEWER", "AUDITOR"}), frozenset({"AUDITOR"}))
    with pytest.raises(MissingRole) as caught:
        access.require_roles(frozenset({"VIEWER"}), frozenset({"ADMIN"}))
    assert caught.value.status == 403 and caught.value.code == "forbidden"


def test_scoped_keys_are_refused_by_routes_that_do_not_opt_in() -> None:
    access.require_scope_allows(
        key_project=None, route_has_project_param=False, route_allows_scoped=False
    )
    access.require_scope_allows(
        key_project="p", route_has_project_param=True, route_allows_scoped=False
    )
    access.require_scope_allows(
        key_project="p", route_has_project_param=False, route_allows_scoped=True
    )
    with pytest.raises(ProjectScopeForbidden):
        access.require_scope_allows(
            key_project="p", route_has_project_param=False, route_allows_scoped=False
        )
    assert access.may_see_project(key_project=None, project_id="a")
    assert access.may_see_project(key_project="a", project_id="a")
    assert not access.may_see_project(key_project="a", project_id="b")


# ---- ETags ---------------------------------------------------------------------------------
def test_if_match_uses_strong_comparison() -> None:
    current = etag.etag_for(7)
    etag.check_if_match(None, current)
    etag.check_if_match(current, current)
    etag.check_if_match(f'"v1", {current}', current)
    etag.check_if_match("*", current)
    for stale in ('"v6"', f"W/{current}", ""):
        with pytest.raises(EtagMismatch) as caught:
            etag.check_if_match(stale, current)
        assert caught.value.status == 412 and caught.value.code == "precondition_failed"


def test_if_none_match_uses_weak_comparison() -> None:
    current = etag.etag_for(3)
    assert etag.none_match(current, current) and etag.none_match(f"W/{current}", current)
    assert etag.none_match("*", current)
    assert not etag.none_match('"v2"', current) and not etag.none_match(None, current)


# ---- rate buckets --------------------------------------------------------------------------
def test_bucket_allows_a_burst_then_asks_to_wait() -> None:
    bucket = ratelimit.full_bucket(burst=3, now=0.0)
    for _ in range(3):
        bucket, wait = ratelimit.take(bucket, now=0.0, rate=0.5, burst=3)
        assert wait == 0
    bucket, wait = ratelimit.take(bucket, now=0.0, rate=0.5, burst=3)
    assert wait == 2  # one token at 0.5/s
    bucket, wait = ratelimit.take(bucket, now=2.0, rate=0.5, burst=3)
    assert wait == 0


@given(
    st.lists(st.floats(min_value=0, max_value=5, allow_nan=False), min_size=1, max_size=50),
    st.floats(min_value=0.1, max_value=100),
    st.integers(min_value=1, max_value=20),
)
def test_bucket_never_allows_more_than_burst_plus_refill(
    gaps: list[float], rate: float, burst: int
) -> None:
    bucket, now, allowed = ratelimit.full_bucket(burst=burst, now=0.0), 0.0, 0
    for gap in gaps:
        now += gap
        bucket, wait = ratelimit.take(bucket, now=now, rate=rate, burst=burst)
        allowed += wait == 0
        assert 0 <= bucket.tokens <= burst and (wait == 0 or wait >= 1)
    assert allowed <= burst + now * rate + 1e-6


def test_full_bucket_can_be_forgotten() -> None:
    bucket = ratelimit.Bucket(tokens=1.0, updated_at=0.0)
    assert not ratelimit.is_full(bucket, now=0.0, rate=1.0, burst=3)
    assert ratelimit.is_full(bucket, now=2.0, rate=1.0, burst=3)


# ---- idempotency ---------------------------------------------------------------------------
def _attempt(
    *, fingerprint: str = "f", running: bool = False, age_s: float = 1
) -> idempotency.Attempt:
    started = NOW - dt.timedelta(seconds=age_s)
    return idempotency.Attempt(
        fingerprint=fingerprint,
        running=running,
        started_at=started,
        expires_at=started + dt.timedelta(hours=24),
    )


def test_idempotency_decisions() -> None:
    stale = dt.timedelta(minutes=1)
    decide = idempotency.decide
    o = idempotency.Outcome
    assert decide(None, fingerprint="f", now=NOW, stale_after=stale) is o.START
    assert decide(_attempt(), fingerprint="f", now=NOW, stale_after=stale) is o.REPLAY
    assert decide(_attempt(), fingerprint="g", now=NOW, stale_after=stale) is o.REUSED
    assert (
        decide(_attempt(running=True), fingerprint="f", now=NOW, stale_after=stale) is o.IN_PROGRESS
    )
    assert (
        decide(_attempt(running=True, age_s=120), fingerprint="f", now=NOW, stale_after=stale)
        is o.TAKE_OVER
    )
    expired = _attempt(fingerprint="g", age_s=25 * 3600)
    assert decide(expired, fingerprint="f", now=NOW, stale_after=stale) is o.START


def test_a_running_attempt_of_a_dead_process_is_taken_over_at_once() -> None:
    stale = dt.timedelta(minutes=1)
    running = _attempt(running=True)
    dead = dataclasses.replace(running, holder_alive=False)
    alive = dataclasses.replace(running, holder_alive=True)
    decide = idempotency.decide
    assert (
        decide(dead, fingerprint="f", now=NOW, stale_after=stale) is idempotency.Outcome.TAKE_OVER
    )
    assert (
        decide(alive, fingerprint="f", now=NOW, stale_after=stale)
        is idempotency.Outcome.IN_PROGRESS
    )
    # A hung process: alive, yet older than any request can take.
    hung = dataclasses.replace(alive, started_at=NOW - dt.timedelta(minutes=2))
    assert (
        decide(hung, fingerprint="f", now=NOW, stale_after=stale) is idempotency.Outcome.TAKE_OVER
    )


def test_fingerprint_separates_its_parts() -> None:
    fp = idempotency.fingerprint
    one = fp(method="POST", path="/a", query="", body=b"bc")
    assert one == fp(method="POST", path="/a", query="", body=b"bc")
    assert one != fp(method="POST", path="/ab", query="", body=b"c")
    assert one != fp(method="POST", path="/a", query="b", body=b"c")


def test_idempotency_key_shape() -> None:
    assert idempotency.check_key("order-123") == "order-123"
    for bad in ("", "has space", "x" * 256, "ünï"):
        with pytest.raises(FieldInvalid):
            idempotency.check_key(bad)


# ---- projects and users --------------------------------------------------------------------
STATE = ProjectState(
    project_id="p1", name="A", description="", default_branch="main", repos=["r"], badge="private"
)


def test_patch_emits_only_changed_fields() -> None:
    change = project_changes(STATE, ProjectPatch(name="A", description="new", repos=["r"]))
    assert change == ProjectUpdated(project_id="p1", description="new")
    assert project_changes(STATE, ProjectPatch(name="A")) is None
    assert project_changes(STATE, ProjectPatch()) is None
    unset = project_changes(STATE, ProjectPatch(badge="public"))
    assert unset is not None and unset.name is msgspec.UNSET and unset.badge == "public"


def test_slugs_cannot_look_like_ids() -> None:
    assert looks_like_id("0190f3a2-7c1e-7d2a-9a51-0c2f3e4b5a6d")
    assert not looks_like_id("my-project")
    with pytest.raises(FieldInvalid):
        check_new_slug("0190f3a2-7c1e-7d2a-9a51-0c2f3e4b5a6d")
    check_new_slug("my-project")


def test_repos_listed_once() -> None:
    check_repos(["a", "b"])
    with pytest.raises(FieldInvalid):
        check_repos(["a", "a"])


def test_logins_and_emails_compare_without_case() -> None:
    assert login_key("Octo-Cat") == login_key("octo-cat")
    assert email_key(" A@Example.org") == email_key("a@example.org")
    with pytest.raises(FieldInvalid) as caught:
        check_distinct_emails(["a@x.org", "A@x.org"])
    assert caught.value.extra["errors"][0]["field"] == "$.emails"
