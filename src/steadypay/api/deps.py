"""FastAPI dependencies: the container, the calling principal, the idempotency key.

All are ``async def``: FastAPI runs a plain ``def`` dependency in a thread pool, two hops per
request that cost 15-18% of an API worker's CPU under load (docs/performance.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from steadypay.api.container import Container
from steadypay.errors import AuthenticationError, PermissionDenied
from steadypay.http.context import request_id
from steadypay.idempotency.domain import validate_key
from steadypay.identity.audit import AuditEntry
from steadypay.identity.domain import Principal, hash_api_key


async def container(request: Request) -> Container:
    built: Container = request.app.state.container
    return built


ContainerDep = Annotated[Container, Depends(container)]


bearer = HTTPBearer(
    auto_error=False,
    description="An operator key (STEADYPAY_ADMIN_KEY or a named admin key) or a user's API key.",
)


def client_address(request: Request) -> str:
    """The caller's address (behind a proxy: uvicorn's ``--forwarded-allow-ips`` makes it the
    forwarded one; docs/security.md)."""
    return request.client.host if request.client else "unknown"


async def principal(
    request: Request,
    c: ContainerDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """Who is calling, within the rate limits: an address that keeps sending unknown keys is
    refused before the database is asked; each principal spends its per-key budget."""
    token = credentials.credentials if credentials else None
    if not token:
        raise AuthenticationError()
    limits = c.rate_limits
    key_hash = hash_api_key(token)
    address = client_address(request)
    await limits.before_lookup(address, key_hash)
    try:
        who = await c.identity.authenticate(token, key_hash)
    except AuthenticationError:
        await limits.failed_lookup(address)
        raise
    await limits.succeeded(key_hash)
    await limits.admit(who.actor, operator=who.is_admin)
    return who


PrincipalDep = Annotated[Principal, Depends(principal)]


async def admin(who: PrincipalDep) -> Principal:
    if not who.is_admin:
        raise PermissionDenied("this needs the admin key")
    return who


AdminDep = Annotated[Principal, Depends(admin)]


def audit_entry(
    request: Request, who: Principal, action: str, target: str | None = None
) -> AuditEntry:
    """The audit trail's who, from where and which request, for an action by ``who``."""
    return AuditEntry(
        actor=who.actor,
        action=action,
        target=target,
        source=client_address(request),
        request_id=request_id(),
    )


async def idempotency_key(
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Required on money-moving POSTs: 1-255 chars, unique per request.",
        ),
    ] = None,
) -> str:
    return validate_key(key)


IdempotencyKeyDep = Annotated[str, Depends(idempotency_key)]
