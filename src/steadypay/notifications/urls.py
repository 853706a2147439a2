"""Where a webhook may point: the URL rules (checked when an endpoint is registered, by the
payment API at its edge and by the notification service itself) and the address rules (checked
on every delivery, against the addresses the host resolves to then). Plain Python.

**URL rules** (:func:`check_webhook_url`), each a 400 ``validation_error`` with param ``url``:
at most 2048 characters; no control character, format character or whitespace anywhere (the
check runs on the raw string: ``urlsplit`` would quietly drop a tab or a newline); scheme http
or https; a host, a valid DNS name or IP literal; no userinfo (not even an empty ``@``); a port,
when given, in 1-65535. In production also: https only, no ``localhost``, and a host given as an
IP literal must pass the address rules.

**Address rules** (:class:`AddressPolicy`): refused are unspecified, loopback, link-local,
private, unique-local, site-local, multicast, reserved and every other not globally reachable
address (``ipaddress``'s ``is_global``: shared, documentation, benchmarking ranges), judged on
the IPv4 address inside IPv4-mapped, 6to4 and NAT64 addresses. Networks listed in
``allowed_networks`` pass despite that (a development receiver on loopback, a partner on a
private link), except the cloud metadata addresses, which are always refused.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from steadypay.errors import ValidationError

MAX_URL_LENGTH: Final = 2048
LOOPBACK_NETWORKS: Final = ("127.0.0.0/8", "::1/128")
"""What development and tests may deliver to unless they configure otherwise."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA_ADDRESSES: Final = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean... instance metadata
        "169.254.170.2",  # AWS ECS task metadata and credentials
        "fd00:ec2::254",  # AWS instance metadata over IPv6
        "100.100.100.200",  # Alibaba Cloud metadata
    )
)
_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")
_UNIQUE_LOCAL: Final = ipaddress.ip_network("fc00::/7")
_LABEL: Final = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")
_NUMERIC_LABEL: Final = re.compile(r"[0-9]+|0x[0-9a-f]*")
"""A last label like this makes resolvers read the host as an IPv4 address (``127.1``,
``0x7f.0.0.1``, ``2130706433``): only the canonical dotted-quad form is accepted."""


def _refuse(message: str) -> ValidationError:
    return ValidationError(message, param="url")


def parse_networks(networks: Iterable[str]) -> tuple[IPNetwork, ...]:
    """CIDRs (``10.1.0.0/16``, ``::1/128``, or a bare address); ``ValueError`` names a bad one."""
    parsed = []
    for network in networks:
        try:
            parsed.append(ipaddress.ip_network(network.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"{network!r} is not an IP network: {exc}") from exc
    return tuple(parsed)


def allowed_networks(configured: Iterable[str] | None, *, production: bool) -> tuple[str, ...]:
    """The networks deliveries may reach despite the address rules: those configured, or by
    default loopback outside production and nothing in production."""
    if configured is not None:
        return tuple(configured)
    return () if production else LOOPBACK_NETWORKS


def _embedded_ipv4(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 one stands for (IPv4-mapped, 6to4, NAT64), else itself."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Which addresses a webhook delivery may connect to."""

    allowed: tuple[IPNetwork, ...] = ()

    @classmethod
    def of(cls, networks: Iterable[str]) -> AddressPolicy:
        return cls(parse_networks(networks))

    def refusal(self, address: IPAddress) -> str | None:
        """Why ``address`` may not be connected to (a key of :data:`REFUSALS`), or None."""
        effective = _embedded_ipv4(address)
        if address in METADATA_ADDRESSES or effective in METADATA_ADDRESSES:
            return "metadata"
        if any(address in net or effective in net for net in self.allowed):
            return None
        for kind in ("unspecified", "loopback", "link_local", "multicast", "reserved"):
            if getattr(effective, f"is_{kind}"):
                return kind
        if isinstance(effective, ipaddress.IPv6Address):
            if effective.is_site_local:
                return "site_local"
            if effective in _UNIQUE_LOCAL:
                return "unique_local"
        if effective.is_private:
            return "private"
        if not effective.is_global:
            return "not_global"
        return None


REFUSALS: Final = {
    "metadata": "a cloud metadata address",
    "unspecified": "an unspecified address",
    "loopback": "a loopback address",
    "link_local": "a link-local address",
    "multicast": "a multicast address",
    "reserved": "a reserved address",
    "site_local": "a site-local address",
    "unique_local": "a unique-local address",
    "private": "a private address",
    "not_global": "an address that is not globally reachable",
}
"""What :meth:`AddressPolicy.refusal` answers (the metric's ``reason``), in words."""


def check_webhook_url(url: str, *, production: bool, policy: AddressPolicy | None = None) -> str:
    """``url`` if a webhook may be registered there, else :class:`ValidationError` (param
    ``url``). ``policy`` (default: nothing allowed) judges IP literals in production."""
    if not url:
        raise _refuse("url is required")
    if len(url) > MAX_URL_LENGTH:
        raise _refuse(f"url is longer than {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise _refuse("url must not contain whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number in range
    except ValueError as exc:
        raise _refuse("url is not a valid URL") from exc
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _refuse("url must be an absolute http:// or https:// URL")
    if "@" in parts.netloc:
        raise _refuse("url must not carry credentials (user:password@)")
    if port == 0:
        raise _refuse("url's port must be 1-65535")
    host = _host(parts.hostname or "")
    if not production:
        return url
    if parts.scheme != "https":
        raise _refuse("url must use https")
    if isinstance(host, str):
        if host == "localhost" or host.endswith(".localhost"):
            raise _refuse("url must not point at this host")
        return url
    reason = (policy or AddressPolicy()).refusal(host)
    if reason is not None:
        raise _refuse(f"url must point at a public address, not {REFUSALS[reason]}")
    return url


def _host(hostname: str) -> str | IPAddress:
    """The host as an IP address, or as a lower-case ASCII DNS name; else ValidationError."""
    if not hostname:
        raise _refuse("url must name a host")
    try:
        return ipaddress.ip_address(hostname)
    except ValueError:
        pass
    try:
        name = hostname.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise _refuse("url's host is not a valid host name") from exc
    labels = name.removesuffix(".").split(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise _refuse("url's host is not a valid host name")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        raise _refuse("url's host must be a DNS name or an IP address in canonical form")
    return name
