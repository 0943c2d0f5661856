import ipaddress

import pytest

from tasks.settings import reset_settings
from tasks.webhooks.addresses import (
    UnsafeEndpointError,
    check_endpoint,
    is_allowed_address,
    parse_endpoint_url,
)

REFUSED = [
    "127.0.0.1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "::1",
    "::",
    "fc00::1",
    "fd12::1",
    "fe80::1",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "64:ff9b::7f00:1",
    "2002:7f00:1::",
    "2001:db8::1",
]
ACCEPTED = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]


@pytest.mark.parametrize("address", REFUSED)
def test_private_and_reserved_addresses_are_refused(address):
    assert not is_allowed_address(ipaddress.ip_address(address), [])


@pytest.mark.parametrize("address", ACCEPTED)
def test_public_addresses_are_allowed(address):
    assert is_allowed_address(ipaddress.ip_address(address), [])


def test_allow_list_admits_its_networks_and_only_them():
    allowed = [ipaddress.ip_network("127.0.0.0/8")]
    assert is_allowed_address(ipaddress.ip_address("127.0.0.1"), allowed)
    assert is_allowed_address(ipaddress.ip_address("::ffff:127.0.0.1"), allowed)
    assert not is_allowed_address(ipaddress.ip_address("10.0.0.1"), allowed)
    assert not is_allowed_address(ipaddress.ip_address("::1"), allowed)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hooks",
        "http://localhost/hooks",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]/",
        "https://100.64.0.1/",
        "http://[fc00::1]/",
        "http://0.0.0.0/",
    ],
)
def test_endpoint_on_a_private_address_is_refused_without_allow_list(home, url):
    with pytest.raises(UnsafeEndpointError, match="private or reserved"):
        check_endpoint(url)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/x", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("http://user:hunter2@8.8.8.8/", "credentials"),
        ("http:///nohost", "no host"),
        ("http://8.8.8.8:99999/", "cannot be parsed"),
    ],
)
def test_malformed_urls_are_refused(home, url, reason):
    with pytest.raises(UnsafeEndpointError, match=reason) as caught:
        parse_endpoint_url(url)
    assert "hunter2" not in str(caught.value)


def test_https_is_required_when_configured(home, monkeypatch):
    monkeypatch.setenv("WATERLINE_WEBHOOK_REQUIRE_HTTPS", "true")
    reset_settings()
    with pytest.raises(UnsafeEndpointError, match="must use https"):
        parse_endpoint_url("http://8.8.8.8/hooks")
    assert parse_endpoint_url("https://8.8.8.8/hooks?a=1") == (
        "https",
        "8.8.8.8",
        443,
        "/hooks?a=1",
    )


def test_allow_listed_loopback_resolves_to_the_checked_address(home, monkeypatch):
    monkeypatch.setenv("WATERLINE_WEBHOOK_ALLOWED_NETWORKS", '["127.0.0.0/8"]')
    reset_settings()
    endpoint = check_endpoint("http://127.0.0.1:8080/hooks?x=1")
    assert endpoint.address == ipaddress.ip_address("127.0.0.1")
    assert endpoint.connect_url() == "http://127.0.0.1:8080/hooks?x=1"
    assert endpoint.host_header() == "127.0.0.1:8080"
