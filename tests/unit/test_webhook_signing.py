"""Webhook secrets and signatures, checked against the Standard Webhooks reference verifier
(the ``standardwebhooks`` package) and the spec's own example."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks import Webhook, WebhookVerificationError

from services.webhook_fanout.domain.errors import InvalidWebhookSecret, SignatureRejected
from services.webhook_fanout.domain.signing import (
    SigningKeys,
    generate_secret,
    orbitalreg_signature,
    parse_secret,
    sign,
    verify,
    verify_orbitalreg,
)

OLD = generate_secret(bytes(range(32)))
NEW = generate_secret(bytes(range(100, 132)))
BODY = b'{"type":"release.decided","data":{"repo":"acme/web"}}'


def now_headers(signature: str, *, msg_id: str, timestamp: int) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def _flip_every(header: str) -> str:
    return " ".join(
        entry[:-4] + ("AAA=" if not entry.endswith("AAA=") else "BBB=")
        for entry in header.split(" ")
    )


def test_the_spec_example_signature() -> None:
    # The secret and message of the spec's example (libraries/ test vectors); the expected
    # value is computed independently here with hmac, not with our code.
    secret = parse_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", scheme="standard")
    body = b'{"test": 2432232314}'
    key = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    digest = hmac.new(key, b"msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330." + body, hashlib.sha256)
    expected = "v1," + base64.b64encode(digest.digest()).decode()
    assert sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body, [secret]) == expected
    assert expected == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


@pytest.mark.parametrize("secrets", [[NEW], [NEW, OLD]], ids=["single", "rotating"])
def test_the_reference_verifier_accepts_our_signatures(secrets: list) -> None:
    timestamp = int(time.time())
    msg_id = "0f6a3c1e-8f33-4b8e-9a54-1d7c1a9d0e11"
    headers = now_headers(
        sign(msg_id, timestamp, BODY, secrets), msg_id=msg_id, timestamp=timestamp
    )
    for secret in secrets:
        assert Webhook(secret.text).verify(BODY, headers) == {
            "type": "release.decided",
            "data": {"repo": "acme/web"},
        }


def test_a_rotating_signature_lists_newest_first_space_separated() -> None:
    header = sign("msg", 1_700_000_000, BODY, [NEW, OLD])
    first, second = header.split(" ")
    assert first == sign("msg", 1_700_000_000, BODY, [NEW])
    assert second == sign("msg", 1_700_000_000, BODY, [OLD])


@pytest.mark.parametrize(
    "tamper",
    [
        lambda b, h: (b + b" ", h),
        lambda b, h: (b, h | {"webhook-id": h["webhook-id"] + "x"}),
        lambda b, h: (b, h | {"webhook-timestamp": str(int(h["webhook-timestamp"]) - 1)}),
        lambda b, h: (b, h | {"webhook-signature": _flip_every(h["webhook-signature"])}),
    ],
    ids=["body", "id", "timestamp", "signature"],
)
def test_the_reference_verifier_rejects_tampered_deliveries(tamper) -> None:  # type: ignore[no-untyped-def]
    timestamp = int(time.time())
    headers = now_headers(
        sign("msg_1", timestamp, BODY, [NEW, OLD]), msg_id="msg_1", timestamp=timestamp
    )
    body, bad = tamper(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(NEW.text).verify(body, bad)
    with pytest.raises(SignatureRejected):
        verify(body, bad, [NEW], now=dt.datetime.now(dt.UTC))


def test_a_secret_not_in_the_rotation_is_rejected() -> None:
    timestamp = int(time.time())
    headers = now_headers(sign("m", timestamp, BODY, [NEW]), msg_id="m", timestamp=timestamp)
    with pytest.raises(WebhookVerificationError):
        Webhook(OLD.text).verify(BODY, headers)


@given(
    body=st.binary(max_size=2000),
    key=st.binary(min_size=24, max_size=64),
    msg_id=st.from_regex(r"[A-Za-z0-9_-]{1,40}", fullmatch=True),
    offset=st.integers(min_value=-299, max_value=299),
)
def test_our_verifier_accepts_what_we_sign(
    body: bytes, key: bytes, msg_id: str, offset: int
) -> None:
    secret = generate_secret(key)
    now = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)
    timestamp = int(now.timestamp()) + offset
    headers = now_headers(
        sign(msg_id, timestamp, body, [secret]), msg_id=msg_id, timestamp=timestamp
    )
    verify(body, headers, [secret], now=now)
    assert parse_secret(secret.text, scheme="standard") == secret


def test_verify_refuses_old_and_future_timestamps_and_missing_headers() -> None:
    now = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)
    stamp = int(now.timestamp())
    for offset, code in ((-301, "webhook_timestamp_too_old"), (301, "webhook_timestamp_too_new")):
        headers = now_headers(
            sign("m", stamp + offset, BODY, [NEW]), msg_id="m", timestamp=stamp + offset
        )
        with pytest.raises(SignatureRejected) as caught:
            verify(BODY, headers, [NEW], now=now)
        assert caught.value.code == code
    with pytest.raises(SignatureRejected) as caught:
        verify(BODY, {"webhook-id": "m"}, [NEW], now=now)
    assert caught.value.code == "webhook_headers_missing"
    headers = {"Webhook-Id": "m", "WEBHOOK-TIMESTAMP": "1.5e9", "webhook-signature": "v1,x"}
    with pytest.raises(SignatureRejected) as caught:
        verify(BODY, headers, [NEW], now=now)
    assert caught.value.code == "webhook_timestamp_invalid"


def test_verify_skips_other_versions_and_junk_entries() -> None:
    now = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)
    stamp = int(now.timestamp())
    good = sign("m", stamp, BODY, [NEW])
    junk = "v1a,AAAA v1,not-base64!! nocomma v2,abc"
    verify(BODY, now_headers(f"{junk} {good}", msg_id="m", timestamp=stamp), [NEW], now=now)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "starts with 'whsec_'"),
        ("whsec_", "nothing after"),
        ("whsec_MfKQ9r8G KYqrTwjUPD8ILPZIo2LaLaSw", "character 15 is not"),
        ("whsec_MfKQ9r8G=KYqrTwjUPD8ILPZIo2LaLaSw", "character 15 is not"),
        ("whsec_" + base64.b64encode(b"x" * 23).decode(), "decodes to 23 bytes"),
        ("whsec_" + base64.b64encode(b"x" * 65).decode(), "decodes to 65 bytes"),
        ("whsec_" + base64.b64encode(b"x" * 32).decode() + "=", "wrong length or padding"),
        ("whsec_" + "A" * 41, "wrong length or padding"),
        ("whsec_" + "A" * 300, "at most 256"),
    ],
)
def test_malformed_standard_secrets_are_refused_precisely(text: str, fragment: str) -> None:
    with pytest.raises(InvalidWebhookSecret) as caught:
        parse_secret(text, scheme="standard")
    assert fragment in caught.value.detail
    assert caught.value.code == "invalid_webhook_secret"
    assert caught.value.status == 422
    # The secret itself is never repeated in the error.
    assert text[6:] not in caught.value.detail or len(text) <= 6


def test_unpadded_and_padded_base64_are_both_read() -> None:
    key = bytes(range(32))
    padded = base64.b64encode(key).decode()
    assert padded.endswith("=")
    assert parse_secret("whsec_" + padded, scheme="standard").standard_key == key
    assert parse_secret("whsec_" + padded.rstrip("="), scheme="standard").standard_key == key


def test_orbitalreg_takes_a_free_form_secret_but_standard_does_not() -> None:
    secret = parse_secret("my-orbitalreg-secret-2024", scheme="orbitalreg")
    assert secret.standard_key is None
    with pytest.raises(InvalidWebhookSecret):
        parse_secret("my-orbitalreg-secret-2024", scheme="standard")
    with pytest.raises(InvalidWebhookSecret, match="at least 16"):
        parse_secret("short", scheme="orbitalreg")
    with pytest.raises(InvalidWebhookSecret, match="character 5 is not"):
        parse_secret("abcd efghijklmnopqrst", scheme="orbitalreg")
    with pytest.raises(InvalidWebhookSecret):
        parse_secret("abcdefghijklmnopq\x00", scheme="orbitalreg")
    with pytest.raises(InvalidWebhookSecret, match="Standard Webhooks"):
        sign("m", 1, BODY, [secret])


def test_orbitalreg_signature_is_what_an_orbitalreg_receiver_computes() -> None:
    # The receiver's recipe: hmac of the raw body with the secret text, "sha256=" + hexdigest.
    for secret in (NEW, parse_secret("my-orbitalreg-secret-2024", scheme="orbitalreg")):
        expected = "sha256=" + hmac.new(secret.text.encode(), BODY, hashlib.sha256).hexdigest()
        assert orbitalreg_signature(BODY, secret) == expected
        verify_orbitalreg(BODY, expected, [secret])
        with pytest.raises(SignatureRejected):
            verify_orbitalreg(BODY + b" ", expected, [secret])
    with pytest.raises(SignatureRejected) as caught:
        verify_orbitalreg(BODY, None, [NEW])
    assert caught.value.code == "webhook_headers_missing"


def test_during_a_rotation_standard_sends_both_and_orbitalreg_the_previous_until_grace_ends() -> (
    None
):
    until = dt.datetime(2026, 5, 2, tzinfo=dt.UTC)
    during = SigningKeys.at(
        until - dt.timedelta(seconds=1), current=NEW, previous=OLD, previous_valid_until=until
    )
    assert during.standard() == (NEW, OLD)
    assert during.orbitalreg() == OLD
    after = SigningKeys.at(until, current=NEW, previous=OLD, previous_valid_until=until)
    assert after.standard() == (NEW,)
    assert after.orbitalreg() == NEW


def test_secrets_never_show_in_repr() -> None:
    assert NEW.text not in repr(NEW)
    assert NEW.text not in str(NEW)
    assert NEW.text not in repr(SigningKeys(NEW, OLD))


def test_generate_secret_needs_enough_random_bytes_and_round_trips() -> None:
    with pytest.raises(ValueError):
        generate_secret(b"x" * 23)
    secret = generate_secret(b"\xff" * 32)
    assert secret.text.startswith("whsec_")
    assert parse_secret(secret.text, scheme="standard").standard_key == b"\xff" * 32


def test_sign_refuses_ids_that_would_make_the_signed_content_ambiguous() -> None:
    for bad in ("", "a.b", "a b", "é", "x" * 257):
        with pytest.raises(ValueError):
            sign(bad, 1, BODY, [NEW])
    with pytest.raises(ValueError):
        sign("m", 1, BODY, [])
