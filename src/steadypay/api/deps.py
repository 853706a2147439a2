"""FastAPI dependencies: the container, the calling principal, the idempotency key.

All are ``async def``: FastAPI runs a plain ``def`` dependency in a thread pool, two hops per
request that cost 15-18% of an API worker's CPU under load (docs/performance.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from steadypay.api.container import Container
from steadypay.errors import PermissionDenied
from steadypay.idempotency.domain import validate_key
from steadypay.identity.domain import Principal


async def container(request: Request) -> Container:
    built: Container = request.app.state.container
    return built


ContainerDep = Annotated[Container, Depends(container)]


bearer = HTTPBearer(
    auto_error=False,
    description="The admin key (STEADYPAY_ADMIN_KEY) or a user's API key.",
)


async def principal(
    c: ContainerDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    return await c.identity.authenticate(credentials.credentials if credentials else None)


PrincipalDep = Annotated[Principal, Depends(principal)]


async def admin(who: PrincipalDep) -> Principal:
    if not who.is_admin:
        raise PermissionDenied("this needs the admin key")
    return who


AdminDep = Annotated[Principal, Depends(admin)]


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
