"""A receiver URL's shape: refused precisely before anything is resolved."""

from __future__ import annotations

import pytest

from services.webhook_fanout.domain.errors import InvalidReceiverUrl
from services.webhook_fanout.domain.receivers import MAX_URL_CHARS, ReceiverUrl, check_receiver_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://Hooks.Example.com/in?x=1",
            ReceiverUrl(
                url="https://Hooks.Example.com/in?x=1",
                scheme="https",
                host="hooks.example.com",
                port=443,
            ),
        ),
        (
            "HTTP://example.com:8080",
            ReceiverUrl(
                url="HTTP://example.com:8080", scheme="http", host="example.com", port=8080
            ),
        ),
        (
            "http://127.0.0.1:9000/hook",
            ReceiverUrl(
                url="http://127.0.0.1:9000/hook",
                scheme="http",
                host="127.0.0.1",
                port=9000,
                address="127.0.0.1",
            ),
        ),
        (
            "http://[::1]/",
            ReceiverUrl(url="http://[::1]/", scheme="http", host="::1", port=80, address="::1"),
        ),
        (
            "https://xn--bcher-kva.example/",
            ReceiverUrl(
                url="https://xn--bcher-kva.example/",
                scheme="https",
                host="xn--bcher-kva.example",
                port=443,
            ),
        ),
    ],
)
def test_accepted_urls(url: str, expected: ReceiverUrl) -> None:
    assert check_receiver_url(url) == expected


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ftp://example.com/x", "http or https"),
        ("file:///etc/passwd", "http or https"),
        ("gopher://example.com", "http or https"),
        ("javascript:alert(1)", "http or https"),
        ("example.com/hook", "absolute"),
        ("//example.com/hook", "absolute"),
        ("https://user:pass@example.com/", "credentials"),
        ("https://token@example.com/", "credentials"),
        ("https://example.com/#frag", "fragment"),
        ("https://example.com/a b", "whitespace"),
        ("https://example.com/\x00", "whitespace or control"),
        ("https://example.com/\n", "whitespace or control"),
        ("https://exämple.com/", "ASCII"),
        ("https:///path", "no host"),
        ("https://:443/", "no host"),
        ("https://example.com:0/", "port"),
        ("https://example.com:65536/", "port"),
        ("https://example.com:http/", "port"),
        ("https://exa_mple.com/", "DNS name"),
        ("https://-example.com/", "DNS name"),
        ("http://[fe80::1%25eth0]/", "zone"),
        ("http://2130706433/", "dotted-quad"),
        ("http://0x7f000001/", "dotted-quad"),
        ("http://127.1/", "dotted-quad"),
        ("http://[::1/", "cannot be read"),
        ("https://" + "a" * 250 + ".com/", "longer than 253"),
        ("https://example.com/" + "a" * MAX_URL_CHARS, "at most 2048"),
        (12, "string"),
    ],
)
def test_refused_urls_say_why(url: object, fragment: str) -> None:
    with pytest.raises(InvalidReceiverUrl) as caught:
        check_receiver_url(url)
    assert fragment in caught.value.detail
    assert caught.value.code == "invalid_webhook_url"
    assert caught.value.status == 422
