"""/v1/webhook_endpoints: users register where their events are POSTed.

The endpoints live in the notification service; this router forwards to its internal API
through the ``notifications`` dependency's resilient client. If that service is unavailable the
client's DependencyUnavailable propagates (503, with Retry-After).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from steadypay.api.container import Container
from steadypay.api.deps import ContainerDep, PrincipalDep
from steadypay.api.schemas import ErrorOut
from steadypay.config import Environment
from steadypay.errors import DependencyUnavailable, NotFound, PermissionDenied, ValidationError
from steadypay.http.responses import json_response
from steadypay.idempotency.domain import validate_key
from steadypay.identity.domain import Principal
from steadypay.notifications.client import DEPENDENCY, NotificationsClient
from steadypay.notifications.urls import AddressPolicy, allowed_networks, check_webhook_url

router = APIRouter(prefix="/v1/webhook_endpoints", tags=["webhooks"])


class CreateWebhookEndpoint(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: StrictStr = Field(
        min_length=1,
        max_length=2048,
        examples=["https://example.com/hook"],
        description="An absolute http(s) URL (https in production): a host, no user:password@, "
        "no whitespace or control characters, a port in 1-65535; in production not localhost "
        "nor a private IP address. Else 400 validation_error with param url.",
    )
    user_id: UUID | None = Field(default=None, description="Admin only: whose endpoint")


OptionalKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Optional: retry with the same key to get the same result back.",
    ),
]

Responses = dict[int | str, dict[str, Any]]
NOT_FOUND: Responses = {404: {"model": ErrorOut, "description": "not_found"}}
UNAVAILABLE: Responses = {
    503: {"model": ErrorOut, "description": "the notification service is unavailable"}
}


def notifications(c: Container) -> NotificationsClient:
    if DEPENDENCY not in c.dependencies.clients or c.settings.admin_key is None:
        raise DependencyUnavailable(
            "webhooks are not configured (STEADYPAY_DEPENDENCIES__NOTIFICATIONS__URL)",
            dependency=DEPENDENCY,
            retry_after_s=None,
        )
    return NotificationsClient(c.dependencies[DEPENDENCY], c.settings.internal_key())


def webhook_url(c: Container, url: str) -> str:
    """``url`` if the notification service would accept it (the same rules, checked here so
    that a caller's bad URL is this caller's 400 and never a call to the service)."""
    production = c.settings.env is Environment.PRODUCTION
    networks = allowed_networks(c.settings.webhook_allowed_networks, production=production)
    return check_webhook_url(url, production=production, policy=AddressPolicy.of(networks))


def forwarded_key(who: Principal, given: str | None) -> str:
    """The caller's key, namespaced by who they are; else a fresh one, so that the client may
    still retry this one call safely."""
    if given is None:
        return f"{who.scope}:auto:{uuid.uuid4()}"
    return f"{who.scope}:{validate_key(given)}"


async def _user_exists(c: Container, user_id: UUID) -> bool:
    return await c.identity.user_exists(user_id)


@router.post(
    "",
    status_code=201,
    responses=NOT_FOUND | UNAVAILABLE,
    summary="Register a webhook endpoint (a user for itself; the admin with user_id). The "
    "answer carries the signing secret, shown once.",
)
async def create_endpoint(
    body: CreateWebhookEndpoint,
    c: ContainerDep,
    who: PrincipalDep,
    idempotency_key: OptionalKey = None,
) -> Response:
    url = webhook_url(c, body.url)
    if who.is_admin:
        if body.user_id is None:
            raise ValidationError("the admin must say whose endpoint: user_id", param="user_id")
        if not await _user_exists(c, body.user_id):
            raise NotFound("no such user", param="user_id")
        user_id = body.user_id
    else:
        if body.user_id is not None and not who.owns(body.user_id):
            raise PermissionDenied("you can only register endpoints for yourself", param="user_id")
        assert who.user_id is not None
        user_id = who.user_id
    endpoint = await notifications(c).create_endpoint(
        user_id, url, idempotency_key=forwarded_key(who, idempotency_key)
    )
    return json_response(endpoint, 201)


@router.post(
    "/{endpoint_id}/rotate_secret",
    responses=NOT_FOUND | UNAVAILABLE,
    summary="Replace the signing secret (owner or admin); the new one is shown once. For the "
    "rotation window (24 h) deliveries carry signatures with both secrets.",
)
async def rotate_secret(
    endpoint_id: UUID, c: ContainerDep, who: PrincipalDep, idempotency_key: OptionalKey = None
) -> Response:
    endpoint = await notifications(c).rotate_secret(
        endpoint_id, user_id=who.user_id, idempotency_key=forwarded_key(who, idempotency_key)
    )
    return json_response(endpoint)


@router.get(
    "/{endpoint_id}/deliveries",
    responses=NOT_FOUND | UNAVAILABLE,
    summary="Delivery attempts to the endpoint, newest first (owner or admin)",
)
async def list_deliveries(
    endpoint_id: UUID,
    c: ContainerDep,
    who: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    starting_after: Annotated[UUID | None, Query(description="A delivery id (cursor)")] = None,
) -> Response:
    page = await notifications(c).deliveries(
        endpoint_id, user_id=who.user_id, limit=limit, starting_after=starting_after
    )
    return json_response(page)
