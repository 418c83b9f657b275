"""The outbound rules (shared/outbound.py): which clone URLs are accepted and which
addresses a host may resolve to."""

from __future__ import annotations

import ipaddress

import pytest

from shared.outbound import (
    OutboundRefused,
    ReceiverUrlRefused,
    check_addresses,
    check_clone_url,
    check_receiver_url,
    literal_address,
    numeric_ipv4,
    parse_cidrs,
    parse_clone_url,
    parse_credentials,
    parse_receiver_url,
    refused_because,
)
from shared.settings import Settings


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


@pytest.mark.parametrize(
    ("url", "kind", "host"),
    [
        ("https://github.com/openvex/spec.git", "https", "github.com"),
        ("HTTPS://GitHub.com/openvex/spec", "https", "github.com"),
        ("https://git.example.com:8443/a/b.git", "https", "git.example.com"),
        ("ssh://git@github.com/openvex/spec.git", "ssh", "github.com"),
        ("ssh://github.com:2222/openvex/spec.git", "ssh", "github.com"),
        ("git@github.com:openvex/spec.git", "ssh", "github.com"),
        ("github.com:openvex/spec.git", "ssh", "github.com"),
        ("https://[2606:4700::1111]/x.git", "https", "2606:4700::1111"),
    ],
)
def test_remote_urls_are_understood(url: str, kind: str, host: str) -> None:
    target = parse_clone_url(url, allow_file=False)
    assert (target.kind, target.host) == (kind, host)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://github.com/a/b.git", "scheme"),
        ("HTTP://github.com/a/b.git", "scheme"),
        ("git://github.com/a/b.git", "scheme"),
        ("ftp://github.com/a/b.git", "scheme"),
        ("ext::sh -c touch% /tmp/pwned", "malformed"),
        ("ext::ssh", "scheme"),
        ("fd::17", "scheme"),
        ("https://user:secret@github.com/a/b.git", "credentials_in_url"),
        ("https://ghp_token@github.com/a/b.git", "credentials_in_url"),
        ("ssh://git:secret@github.com/a/b.git", "credentials_in_url"),
        ("https://github.com/a b.git", "malformed"),
        ("https://github.com/a\x00b.git", "malformed"),
        ("https:///a/b.git", "malformed"),
        ("https://exa$mple.com/a.git", "malformed"),
        ("", "malformed"),
        ("relative/path.git", "relative_path"),
        ("./repo.git", "relative_path"),
    ],
)
def test_refused_urls_say_why(url: str, reason: str) -> None:
    with pytest.raises(OutboundRefused) as caught:
        parse_clone_url(url, allow_file=True)
    assert caught.value.reason == reason
    assert caught.value.code == "clone_url_refused" and caught.value.status == 422
    if ":secret@" in url or "ghp_token" in url:
        assert "secret" not in caught.value.detail and "ghp_token" not in caught.value.detail


def test_file_urls_only_when_allowed() -> None:
    for url in ("file:///srv/git/a.git", "/srv/git/a.git", "file://localhost/srv/a.git"):
        with pytest.raises(OutboundRefused) as caught:
            parse_clone_url(url, allow_file=False)
        assert caught.value.reason == "file_urls_disabled"
        target = parse_clone_url(url, allow_file=True)
        assert target.kind == "file" and target.path is not None
        assert target.path.startswith("/srv/")
    assert parse_clone_url("FILE:///srv/a%20b.git", allow_file=True).path == "/srv/a b.git"


@pytest.mark.parametrize(
    "url",
    [
        "file:relative.git",
        "file:./a.git",
        "file://host/srv/a.git",
        "file://relative/a.git",
        "file:///srv/../etc/a.git",
        "/srv/git/../../etc",
        "file:///srv/%2e%2e/etc",
    ],
)
def test_file_urls_must_be_absolute_without_dot_dot(url: str) -> None:
    with pytest.raises(OutboundRefused) as caught:
        parse_clone_url(url, allow_file=True)
    assert caught.value.reason == "relative_path"


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("10.1.2", "10.1.0.2"),
        ("169.254.169.254", "169.254.169.254"),
        ("1.2.3.4.", "1.2.3.4"),
    ],
)
def test_numeric_hosts_read_as_inet_aton_does(host: str, address: str) -> None:
    assert numeric_ipv4(host) == ip(address)


@pytest.mark.parametrize("host", ["github.com", "1.2.3.4.5", "256.1.1.1", "08.1.1.1", "0x", ""])
def test_names_are_not_numbers(host: str) -> None:
    assert numeric_ipv4(host) is None or host == "0x"


def test_literal_addresses() -> None:
    assert literal_address("[::1]") == ip("::1")
    assert literal_address("::ffff:127.0.0.1") == ip("::ffff:127.0.0.1")
    assert literal_address("github.com") is None


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "169.254.1.1",
        "100.64.0.1",
        "100.100.100.200",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "198.18.0.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd00:ec2::254",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "64:ff9b::a00:1",
    ],
)
def test_internal_addresses_are_refused(address: str) -> None:
    assert refused_because(ip(address)) is not None


@pytest.mark.parametrize(
    "address", ["140.82.112.3", "1.1.1.1", "2606:4700::1111", "::ffff:1.1.1.1"]
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert refused_because(ip(address)) is None


def test_allow_cidrs_admit_internal_addresses() -> None:
    allowed = parse_cidrs(" 127.0.0.0/8, fd12::/64 ,")
    assert refused_because(ip("127.0.0.1"), allowed) is None
    assert refused_because(ip("::ffff:127.0.0.1"), allowed) is None
    assert refused_because(ip("fd12::5"), allowed) is None
    assert refused_because(ip("10.0.0.1"), allowed) is not None
    with pytest.raises(ValueError, match="not a CIDR"):
        parse_cidrs("10.0.0.0/8,nonsense")


def test_one_bad_address_refuses_the_host() -> None:
    with pytest.raises(OutboundRefused) as caught:
        check_addresses("rebind.example", [ip("140.82.112.3"), ip("127.0.0.1")], ())
    assert caught.value.reason == "address" and "127.0.0.1" in caught.value.detail
    with pytest.raises(OutboundRefused) as caught:
        check_addresses("void.example", [], ())
    assert caught.value.reason == "unresolvable"


async def test_check_resolves_the_host() -> None:
    settings = Settings()
    for url in ("https://127.0.0.1/x.git", "https://localhost/x.git", "https://[::1]/x.git"):
        with pytest.raises(OutboundRefused) as caught:
            await check_clone_url(url, settings)
        assert caught.value.reason == "address"
    allowed = settings.with_(outbound_allow_cidrs="127.0.0.0/8,::1/128")
    assert (await check_clone_url("https://127.0.0.1/x.git", allowed)).host == "127.0.0.1"
    with pytest.raises(OutboundRefused) as caught:
        await check_clone_url("https://no-such-host.invalid/x.git", settings)
    assert caught.value.reason == "unresolvable"


def test_credentials_parse_both_forms_and_never_quote_tokens() -> None:
    assert parse_credentials("") == {}
    assert parse_credentials("gh=ghp_abc=def, lab=oauth2:glpat") == {
        "gh": "ghp_abc=def",
        "lab": "oauth2:glpat",
    }
    assert parse_credentials('{"gh": "tok,en"}') == {"gh": "tok,en"}
    for bad in ("gh", "=ghp_secret", '{"gh": 1}', "{not json ghp_secret", "a=b,ghp_secret"):
        with pytest.raises(ValueError) as caught:
            parse_credentials(bad)
        assert "ghp_secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/h", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("javascript:alert(1)", "scheme"),
        ("https://user:pw@example.com/h", "credentials_in_url"),
        ("https://token@example.com/h", "credentials_in_url"),
        ("https:///h", "malformed"),
        ("https://example.com/a b", "malformed"),
        ("https://example.com:99999/h", "malformed"),
        ("", "malformed"),
    ],
)
def test_receiver_urls_refused_say_why(url: str, reason: str) -> None:
    with pytest.raises(ReceiverUrlRefused) as caught:
        parse_receiver_url(url)
    assert caught.value.reason == reason and caught.value.code == "receiver_url_refused"
    assert caught.value.extra["errors"][0]["field"] == "$.url"
    assert "pw" not in caught.value.detail


def test_receiver_urls_understood() -> None:
    assert parse_receiver_url("HTTPS://Hooks.Example.com/x") == ("https", "hooks.example.com", 443)
    assert parse_receiver_url("http://[2606:4700::1111]:8080/") == ("http", "2606:4700::1111", 8080)


async def test_receiver_check_resolves_the_host_with_the_shared_address_rules() -> None:
    settings = Settings()
    for url in (
        "http://127.0.0.1/h",
        "http://localhost:8080/h",
        "http://[::1]/h",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.7/h",
        "http://2130706433/h",
    ):
        with pytest.raises(ReceiverUrlRefused) as caught:
            await check_receiver_url(url, settings)
        assert caught.value.reason == "address", url
    with pytest.raises(ReceiverUrlRefused) as caught:
        await check_receiver_url("https://no-such-host.invalid/h", settings, field="$.workflow_url")
    assert caught.value.reason == "unresolvable"
    assert caught.value.extra["errors"][0]["field"] == "$.workflow_url"
    allowed = settings.with_(outbound_allow_cidrs="127.0.0.0/8")
    target = await check_receiver_url("http://127.0.0.1:9/h", allowed)
    assert (target.host, target.port, [str(a) for a in target.addresses]) == (
        "127.0.0.1",
        9,
        ["127.0.0.1"],
    )
    public = await check_receiver_url("https://93.184.216.34/h", settings)
    assert public.scheme == "https" and public.port == 443
