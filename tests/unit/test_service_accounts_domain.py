"""Pure service-account rules: token shape, ids, names, token roles and expiry, last-use pace."""

from __future__ import annotations

import datetime as dt
import string
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.gateway.domain import service_accounts as sa
from services.gateway.domain import tokens
from services.gateway.domain.access import bearer_token
from services.gateway.domain.errors import FieldInvalid, InvalidToken

NOW = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


@given(st.binary(min_size=32, max_size=32))
def test_service_account_tokens_have_their_own_prefix_and_base62(random: bytes) -> None:
    token = tokens.new_service_account_token(random)
    assert token.startswith("gsa_") and len(token) == 4 + 43
    assert set(token[4:]) <= set(string.ascii_letters + string.digits)
    assert tokens.is_well_formed(token)
    assert bearer_token(f"Bearer {token}") == token
    # Same randomness, another kind of token: the prefixes keep them apart.
    assert tokens.new_token(random)[3:] == token[4:]


@pytest.mark.parametrize(
    "token",
    [
        "gsa_",
        "gsa_" + "a" * 42,
        "gsa_" + "a" * 44,
        "gsa_" + "a" * 42 + "-",
        "gsa_" + "a" * 42 + "_",
    ],
)
def test_malformed_service_account_tokens_are_refused_before_any_lookup(token: str) -> None:
    assert not tokens.is_well_formed(token)
    with pytest.raises(InvalidToken):
        bearer_token(f"Bearer {token}")


def test_ids_are_prefixed_hex_of_the_uuid() -> None:
    source = uuid.UUID(int=0xABC)
    account = sa.service_account_id(source)
    assert account == "sa_" + source.hex and sa.looks_like_service_account_id(account)
    token = sa.token_id(source)
    assert token == "sat_" + source.hex and sa.looks_like_token_id(token)
    assert not sa.looks_like_service_account_id(token)
    assert not sa.looks_like_service_account_id("ci-bot")


def test_a_name_may_not_look_like_an_id() -> None:
    sa.check_new_name("ci-bot")
    sa.check_new_name("sa_not-hex")
    with pytest.raises(FieldInvalid) as caught:
        sa.check_new_name("sa_" + "0" * 32)
    assert caught.value.extra["errors"][0]["field"] == "$.name"


def test_token_roles_default_to_the_accounts_and_may_only_narrow() -> None:
    assert sa.token_roles(["VIEWER", "OPERATOR"], None) == ["OPERATOR", "VIEWER"]
    assert sa.token_roles(["VIEWER", "OPERATOR"], ["VIEWER", "VIEWER"]) == ["VIEWER"]
    with pytest.raises(FieldInvalid) as caught:
        sa.token_roles(["VIEWER"], ["VIEWER", "ADMIN"])
    assert caught.value.code == "role_not_allowed"
    assert "ADMIN" in caught.value.detail
    assert caught.value.extra["errors"][0]["field"] == "$.roles"


def test_token_expiry_from_a_time_or_days_never_both_never_past() -> None:
    later = NOW + dt.timedelta(hours=1)
    assert sa.token_expiry(expires_at=None, expires_in_days=None, now=NOW) is None
    assert sa.token_expiry(expires_at=later, expires_in_days=None, now=NOW) == later
    assert sa.token_expiry(expires_at=None, expires_in_days=30, now=NOW) == NOW + dt.timedelta(
        days=30
    )
    with pytest.raises(FieldInvalid) as both:
        sa.token_expiry(expires_at=later, expires_in_days=1, now=NOW)
    assert both.value.extra["errors"][0]["field"] == "$.expires_in_days"
    for past in (NOW, NOW - dt.timedelta(seconds=1)):
        with pytest.raises(FieldInvalid) as caught:
            sa.token_expiry(expires_at=past, expires_in_days=None, now=NOW)
        assert caught.value.extra["errors"][0]["field"] == "$.expires_at"


def test_last_use_is_written_at_most_once_a_minute() -> None:
    assert sa.last_use_due(None, NOW)
    assert not sa.last_use_due(NOW, NOW)
    assert not sa.last_use_due(NOW, NOW + dt.timedelta(seconds=59))
    assert sa.last_use_due(NOW, NOW + dt.timedelta(minutes=1))
