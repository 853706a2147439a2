"""Service-to-service authentication and the ``/metrics`` guard, shared by every service.

The fraud and notification services accept on every route but health a bearer key of
``STEADYPAY_INTERNAL_KEYS`` (any listed key, so a rotation adds the new key before callers
send it and drops the old one after). Their composition roots put a :class:`ServiceKeys` on
``app.state.internal_keys``; :data:`INTERNAL` is the dependency list a router adds.

``/metrics`` (:func:`metrics_refusal`): with ``STEADYPAY_METRICS_TOKEN`` set, that bearer token
is required from every client; unset, only loopback clients are answered.

Comparisons are constant-time over SHA-256 digests (:mod:`steadypay.keys`) and a key is
checked against every accepted key without stopping at the first match.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from steadypay.errors import AuthenticationError, PermissionDenied, SteadypayError
from steadypay.keys import digest, same_digest, same_secret

internal_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="InternalKey",
    description="A steadypay internal service key (STEADYPAY_INTERNAL_KEYS; outside "
    "production, derived from STEADYPAY_ADMIN_KEY when unset).",
)
metrics_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="MetricsToken",
    description="STEADYPAY_METRICS_TOKEN when set; unset, only loopback clients are answered.",
)

_EXAMPLE = {"error": {"code": "...", "message": "..."}}
_ERROR = {"content": {"application/json": {"example": _EXAMPLE}}}
UNAUTHENTICATED: dict[int | str, dict[str, Any]] = {
    401: {"description": "unauthenticated: no valid internal service key"} | _ERROR
}
"""The OpenAPI ``responses`` entry of a route behind :data:`INTERNAL`."""


class ServiceKeys:
    """The internal keys a service accepts (at least one)."""

    __slots__ = ("_digests",)

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = tuple(digest(k) for k in keys)
        if not self._digests:
            raise RuntimeError(
                "no internal service key: set STEADYPAY_INTERNAL_KEYS (or, outside "
                "production, STEADYPAY_ADMIN_KEY, from which one is derived)"
            )

    def __repr__(self) -> str:
        return f"ServiceKeys({len(self._digests)} keys)"

    def accepts(self, given: str) -> bool:
        """Whether ``given`` is one of the keys; compares with every key, in constant time."""
        given_digest = digest(given)
        found = False
        for expected in self._digests:
            found |= same_digest(given_digest, expected)
        return found


async def internal_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(internal_bearer)],
) -> None:
    """401 unless the bearer is one of the service's internal keys."""
    keys: ServiceKeys = request.app.state.internal_keys
    if credentials is None or not keys.accepts(credentials.credentials):
        raise AuthenticationError("a valid internal service key is required as bearer")


INTERNAL = [Depends(internal_caller)]
"""``dependencies=`` of a router (or route) only steadypay's own processes may call."""


def metrics_refusal(
    client_host: str | None, authorization: str | None, token: str | None
) -> SteadypayError | None:
    """Why a ``/metrics`` request is refused, or None to answer it. ``authorization`` is the
    raw ``Authorization`` header. With a token, it is required of everyone (a local reverse
    proxy would make every client look like loopback); without one, loopback clients only."""
    if token is not None:
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not same_secret(given.strip(), token):
            return AuthenticationError("/metrics needs 'Authorization: Bearer <metrics token>'")
        return None
    if is_loopback(client_host):
        return None
    return PermissionDenied(
        "/metrics answers loopback clients only while STEADYPAY_METRICS_TOKEN is unset"
    )


def is_loopback(host: str | None) -> bool:
    """Whether ``request.client.host`` is an address of this machine's loopback interface
    (127.0.0.0/8, ::1, or IPv4-mapped 127.x); a name or nothing is not."""
    if host is None:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback
