"""Where a webhook may point (issue 14, findings 2 and 9): the URL rules checked at
registration, by the API's edge and by the notification service, and the address rules the
SSRF guard applies on every delivery."""

from __future__ import annotations

import ipaddress

import pytest

from steadypay.config import Environment, Settings
from steadypay.errors import ValidationError
from steadypay.notifications.options import NotificationOptions
from steadypay.notifications.urls import (
    LOOPBACK_NETWORKS,
    MAX_URL_LENGTH,
    AddressPolicy,
    allowed_networks,
    check_webhook_url,
)

GOOD = [
    "https://example.com/hook",
    "http://example.com:8080/a/b?c=d#e",
    "https://hooks.example.com./x",
    "https://bücher.example/hook",
    "https://8.8.8.8/hook",
    "https://[2606:4700::1111]:443/hook",
    "https://example.com/" + "a" * (MAX_URL_LENGTH - len("https://example.com/")),
]

BAD_EVERYWHERE = [
    "",
    "http://example.com/hook\u0000",  # the reproduction of finding 2
    "http://exa\u0000mple.com/",
    "http://example.com/a b",
    "http://example.com/\t",
    "\nhttp://example.com/",
    "http://example.com/\r\n",
    "http://example.com/\u00a0",  # no-break space
    "http://example.com/\u200b",  # zero-width space
    "http://example.com/\u2028",  # line separator
    "http://example.com/\x7f",
    "ftp://example.com/hook",
    "javascript:alert(1)",
    "example.com/hook",
    "//example.com/hook",
    "http:///hook",
    "http://user:pw@example.com/",
    "http://user@example.com/",
    "http://@example.com/",
    "http://example.com:0/",
    "http://example.com:65536/",
    "http://example.com:99999/",
    "http://example.com:-1/",
    "http://example.com:http/",
    "http://[::1/",
    "http://exa_mple-.com/",
    "http://" + "a" * 64 + ".com/",
    "http://127.1/",  # read as 127.0.0.1 by resolvers
    "http://2130706433/",
    "http://0x7f.0.0.1/",
    "https://example.com/" + "a" * (MAX_URL_LENGTH - len("https://example.com/") + 1),
]

BAD_IN_PRODUCTION = [
    "http://example.com/hook",  # https only
    "https://localhost/hook",
    "https://hooks.localhost/hook",
    "https://127.0.0.1/hook",
    "https://10.0.0.5/hook",
    "https://192.168.1.1/hook",
    "https://169.254.169.254/latest/meta-data/",
    "https://[::1]/hook",
    "https://[fd00::1]/hook",
    "https://[::ffff:10.0.0.1]/hook",
    "https://100.64.0.1/hook",
    "https://0.0.0.0/hook",
]


@pytest.mark.parametrize("url", GOOD)
def test_valid_urls_pass_everywhere(url: str) -> None:
    assert check_webhook_url(url, production=False) == url
    if url.startswith("https://"):
        assert check_webhook_url(url, production=True) == url


@pytest.mark.parametrize("url", BAD_EVERYWHERE)
@pytest.mark.parametrize("production", [False, True])
def test_invalid_urls_are_refused_with_param_url(url: str, production: bool) -> None:
    with pytest.raises(ValidationError) as refused:
        check_webhook_url(url, production=production)
    assert refused.value.param == "url"
    assert refused.value.code == "validation_error"


@pytest.mark.parametrize("url", BAD_IN_PRODUCTION)
def test_production_refuses_plain_http_localhost_and_internal_ip_literals(url: str) -> None:
    check_webhook_url(url, production=False)  # development registers them
    with pytest.raises(ValidationError) as refused:
        check_webhook_url(url, production=True)
    assert refused.value.param == "url"


def test_production_accepts_an_ip_literal_in_an_allowed_network_but_never_metadata() -> None:
    policy = AddressPolicy.of(["10.20.0.0/16", "169.254.0.0/16"])
    assert check_webhook_url("https://10.20.1.2/h", production=True, policy=policy)
    with pytest.raises(ValidationError, match="private"):
        check_webhook_url("https://10.21.1.2/h", production=True, policy=policy)
    with pytest.raises(ValidationError, match="metadata"):
        check_webhook_url("https://169.254.169.254/", production=True, policy=policy)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("0.0.0.0", "unspecified"),  # noqa: S104 - an address judged, not bound
        ("::", "unspecified"),
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("169.254.1.1", "link_local"),
        ("fe80::1", "link_local"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.0.1", "private"),
        ("fd12:3456::1", "unique_local"),
        ("fec0::1", "site_local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "not_global"),  # shared address space (carrier NAT)
        ("192.0.2.1", "private"),  # documentation
        ("169.254.169.254", "metadata"),
        ("169.254.170.2", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("::ffff:169.254.169.254", "metadata"),
        ("2002:7f00:1::1", "loopback"),  # 6to4 of 127.0.0.1
        ("2002:a00:1::1", "private"),  # 6to4 of 10.0.0.1
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
        ("8.8.8.8", None),
        ("2606:4700::1111", None),
        ("64:ff9b::808:808", None),  # NAT64 of 8.8.8.8
    ],
)
def test_the_address_rules(address: str, reason: str | None) -> None:
    assert AddressPolicy().refusal(ipaddress.ip_address(address)) == reason


def test_allowed_networks_pass_except_metadata() -> None:
    policy = AddressPolicy.of(["0.0.0.0/0", "::/0"])
    assert policy.refusal(ipaddress.ip_address("10.0.0.1")) is None
    assert policy.refusal(ipaddress.ip_address("::1")) is None
    assert policy.refusal(ipaddress.ip_address("169.254.169.254")) == "metadata"
    assert policy.refusal(ipaddress.ip_address("fd00:ec2::254")) == "metadata"
    loopback = AddressPolicy.of(LOOPBACK_NETWORKS)
    assert loopback.refusal(ipaddress.ip_address("127.0.0.1")) is None
    assert loopback.refusal(ipaddress.ip_address("::ffff:127.0.0.1")) is None
    assert loopback.refusal(ipaddress.ip_address("10.0.0.1")) == "private"


def test_by_default_loopback_is_allowed_outside_production_only() -> None:
    assert allowed_networks(None, production=False) == LOOPBACK_NETWORKS
    assert allowed_networks(None, production=True) == ()
    assert allowed_networks(["10.0.0.0/8"], production=True) == ("10.0.0.0/8",)
    assert allowed_networks([], production=False) == ()


def test_the_options_take_the_deployments_allow_list() -> None:
    development = NotificationOptions().deployed(production=False, allowed_networks=None)
    assert development.allow_private_urls is True
    assert development.delivery_policy.refusal(ipaddress.ip_address("127.0.0.1")) is None
    production = NotificationOptions().deployed(production=True, allowed_networks=None)
    assert production.allow_private_urls is False
    assert production.delivery_policy.refusal(ipaddress.ip_address("127.0.0.1")) == "loopback"
    listed = NotificationOptions().deployed(production=True, allowed_networks=["10.9.0.0/16"])
    assert listed.delivery_policy.refusal(ipaddress.ip_address("10.9.1.1")) is None
    assert NotificationOptions().delivery_policy.allowed == ()  # undecided: nothing private
    with pytest.raises(ValueError, match="not an IP network"):
        NotificationOptions(allowed_networks=("10.0.0.0/33",))


def test_the_setting_refuses_what_is_not_a_network() -> None:
    settings = Settings(env=Environment.TEST, webhook_allowed_networks=("10.0.0.0/8", "::1"))
    assert settings.webhook_allowed_networks == ("10.0.0.0/8", "::1")
    assert Settings(env=Environment.TEST).webhook_allowed_networks is None
    with pytest.raises(ValueError, match="not an IP network"):
        Settings(env=Environment.TEST, webhook_allowed_networks=("intranet",))
