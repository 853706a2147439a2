"""Webhook endpoints, deliveries and the notification service's rules, in plain Python (where
a webhook may point: :mod:`steadypay.notifications.urls`)."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
# Fields of an outbox payload that are routing for the notification service, not content for
# the receiver: a webhook must not learn which other users an event concerned.
INTERNAL_FIELDS = frozenset({"user_ids"})


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    id: UUID
    user_id: UUID
    url: str
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None
    created_at: datetime
    rotated_at: datetime | None


def signing_secrets(
    secret: str, previous: str | None, previous_expires_at: datetime | None, now: datetime
) -> list[str]:
    """The secrets a delivery is signed with now: the current one first, then the previous one
    while its rotation window lasts."""
    if previous is not None and previous_expires_at is not None and previous_expires_at > now:
        return [secret, previous]
    return [secret]


@dataclass(frozen=True, slots=True)
class Delivery:
    id: UUID
    event_id: UUID
    event_type: str
    endpoint_id: UUID
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    last_attempt_at: datetime | None
    next_attempt_at: datetime
    delivered_at: datetime | None


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """A leased delivery with what is needed to send it."""

    id: UUID
    attempts: int
    """The fencing token of this claim."""
    event_id: UUID
    url: str
    body: str
    secrets: list[str]
    give_up_at: datetime


def event_body(payload: dict[str, Any]) -> str:
    """The JSON text a webhook receives: the event without the routing fields."""
    content = {k: v for k, v in payload.items() if k not in INTERNAL_FIELDS}
    return json.dumps(content, separators=(",", ":"), ensure_ascii=False)


def endpoint_json(endpoint: WebhookEndpoint, *, with_secret: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(endpoint.id),
        "user_id": str(endpoint.user_id),
        "url": endpoint.url,
        "created_at": endpoint.created_at.isoformat(),
        "previous_secret_expires_at": (
            endpoint.previous_secret_expires_at.isoformat()
            if endpoint.previous_secret_expires_at
            else None
        ),
    }
    if with_secret:
        body["secret"] = endpoint.secret
    return body


def delivery_json(delivery: Delivery) -> dict[str, Any]:
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": str(delivery.id),
        "event_id": str(delivery.event_id),
        "event_type": delivery.event_type,
        "endpoint_id": str(delivery.endpoint_id),
        "status": delivery.status.value,
        "attempts": delivery.attempts,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "created_at": delivery.created_at.isoformat(),
        "last_attempt_at": iso(delivery.last_attempt_at),
        "next_attempt_at": iso(delivery.next_attempt_at)
        if delivery.status is DeliveryStatus.PENDING
        else None,
        "delivered_at": iso(delivery.delivered_at),
    }
