"""HTTP routes of the notification service. Everything but health needs an internal service
key (``STEADYPAY_INTERNAL_KEYS``, :mod:`steadypay.http.service_auth`) as a bearer token:
callers are steadypay's own processes (the outbox relay, the payment API). The admin key is
not one: an operator acts through the payment API."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response
from pydantic import ValidationError as PydanticValidationError

from steadypay.errors import ValidationError
from steadypay.http.responses import json_response
from steadypay.http.service_auth import INTERNAL, UNAUTHENTICATED
from steadypay.notifications.domain import delivery_json, endpoint_json
from steadypay.notifications.schemas import CreateEndpointIn, EventIn
from steadypay.notifications.service import Incoming, NotificationService, Received

MAX_KEY_LENGTH = 400
MAX_EVENT_BATCH = 1000


async def service(request: Request) -> NotificationService:
    found: NotificationService = request.app.state.service
    return found


ServiceDep = Annotated[NotificationService, Depends(service)]


def optional_key(raw: str | None) -> str | None:
    if raw is not None and not (1 <= len(raw) <= MAX_KEY_LENGTH and raw.isascii()):
        raise ValidationError(
            f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} ASCII characters", param="Idempotency-Key"
        )
    return raw


KeyHeader = Annotated[str | None, Header(alias="Idempotency-Key")]

events = APIRouter(tags=["events"], dependencies=INTERNAL, responses=UNAUTHENTICATED)


@events.post(
    "/events",
    status_code=202,
    summary="Receive an outbox event (from the relay). Deduplicated by event id: a redelivery "
    "is accepted again and notifies nobody twice. Webhooks are sent in the background.",
)
async def receive_event(
    body: EventIn, request: Request, svc: ServiceDep, idempotency_key: KeyHeader = None
) -> Response:
    if idempotency_key is not None and idempotency_key != str(body.id):
        raise ValidationError("Idempotency-Key must be the event id", param="Idempotency-Key")
    payload: dict[str, Any] = await request.json()  # as sent: field order and formatting kept
    received = await svc.receive_event(incoming(body, payload))
    return json_response(received_json(received), 202)


@events.post(
    "/events/batch",
    summary=f"Receive up to {MAX_EVENT_BATCH} outbox events in one request (from the relay), "
    "recorded in one transaction. Each event is deduplicated by its id as on /events; the "
    "answer has one result per event, in order: accepted (with its deliveries), a duplicate, "
    "or rejected with the validation error (a malformed event never holds back the others).",
)
async def receive_events(
    request: Request, svc: ServiceDep, idempotency_key: KeyHeader = None
) -> Response:
    optional_key(idempotency_key)  # events are deduplicated by id; the key is only checked
    try:
        body = await request.json()
    except ValueError as exc:
        raise ValidationError("the body is not JSON") from exc
    items = body.get("events") if isinstance(body, dict) else None
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_EVENT_BATCH:
        raise ValidationError(
            f'the body must be {{"events": [...]}} with 1-{MAX_EVENT_BATCH} events',
            param="events",
        )
    valid: list[Incoming] = []
    results: list[dict[str, Any] | None] = []
    for index, item in enumerate(items):
        event = parse_event(item)
        if isinstance(event, EventIn):
            valid.append(incoming(event, item))
            results.append(None)
            continue
        raw_id = item.get("id") if isinstance(item, dict) else None
        results.append(
            {
                "id": raw_id if isinstance(raw_id, str) else None,
                "status": "rejected",
                "error": {
                    "code": ValidationError.code,
                    "message": f"events[{index}] is not a valid event: {event}",
                    "param": f"events[{index}]",
                },
            }
        )
    received = iter(await svc.receive_events(valid) if valid else [])
    answers = [r if r is not None else received_json(next(received)) for r in results]
    return json_response({"results": answers})


def parse_event(item: object) -> EventIn | str:
    """The event, or what is wrong with it."""
    if not isinstance(item, dict):
        return "it must be an object"
    try:
        return EventIn.model_validate(item)
    except PydanticValidationError as exc:
        return "; ".join(
            f"{'.'.join(map(str, err['loc'])) or 'event'}: {err['msg']}" for err in exc.errors()
        )


def incoming(event: EventIn, payload: dict[str, Any]) -> Incoming:
    return Incoming(event.id, event.type, event.created_at, event.user_ids, payload)


def received_json(received: Received) -> dict[str, Any]:
    return {
        "id": str(received.event_id),
        "status": "duplicate" if received.duplicate else "accepted",
        "duplicate": received.duplicate,
        "deliveries": received.deliveries,
    }


internal = APIRouter(
    prefix="/internal/webhook_endpoints",
    tags=["internal"],
    dependencies=INTERNAL,
    responses=UNAUTHENTICATED,
)


@internal.post(
    "",
    status_code=201,
    summary="Register a webhook endpoint for a user. The answer carries its signing secret. "
    "Retry with the same Idempotency-Key to get the same endpoint back.",
)
async def create_endpoint(
    body: CreateEndpointIn, svc: ServiceDep, idempotency_key: KeyHeader = None
) -> Response:
    endpoint, created = await svc.create_endpoint(
        body.user_id, body.url, optional_key(idempotency_key)
    )
    headers = None if created else {"Idempotent-Replayed": "true"}
    return json_response(endpoint_json(endpoint, with_secret=True), 201, headers=headers)


@internal.post(
    "/{endpoint_id}/rotate_secret",
    summary="Replace the signing secret. The old one keeps signing deliveries (as a second v1) "
    "for the rotation window. The same Idempotency-Key as the last rotation replays it.",
)
async def rotate_secret(
    endpoint_id: UUID,
    svc: ServiceDep,
    user_id: Annotated[UUID | None, Query(description="Only if the endpoint is theirs")] = None,
    idempotency_key: KeyHeader = None,
) -> Response:
    endpoint = await svc.rotate_secret(
        endpoint_id, user_id=user_id, rotation_key=optional_key(idempotency_key)
    )
    return json_response(endpoint_json(endpoint, with_secret=True))


@internal.get("/{endpoint_id}/deliveries", summary="Delivery attempts, newest first")
async def list_deliveries(
    endpoint_id: UUID,
    svc: ServiceDep,
    user_id: Annotated[UUID | None, Query(description="Only if the endpoint is theirs")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    starting_after: Annotated[UUID | None, Query(description="A delivery id")] = None,
) -> Response:
    page, has_more = await svc.deliveries(
        endpoint_id, user_id=user_id, limit=limit, starting_after=starting_after
    )
    return json_response({"data": [delivery_json(d) for d in page], "has_more": has_more})
