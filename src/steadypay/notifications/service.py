"""The notification service's use cases: receive events, manage endpoints, report deliveries."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from steadypay.db.router import Consistency, DatabaseRouter
from steadypay.errors import IdempotencyKeyReuse, NotFound
from steadypay.notifications import repository
from steadypay.notifications.domain import Delivery, WebhookEndpoint, event_body, new_secret
from steadypay.notifications.options import NotificationOptions
from steadypay.notifications.repository import NewEvent
from steadypay.notifications.urls import check_webhook_url


@dataclass(frozen=True, slots=True)
class Incoming:
    id: UUID
    type: str
    created_at: datetime
    user_ids: Sequence[UUID]
    payload: dict[str, Any]
    """The event as sent (webhooks get it without the routing fields)."""


@dataclass(frozen=True, slots=True)
class Received:
    event_id: UUID
    duplicate: bool
    deliveries: int


class NotificationService:
    def __init__(
        self,
        db: DatabaseRouter,
        options: NotificationOptions,
        *,
        allow_private_urls: bool,
        on_new_deliveries: Callable[[], None] = lambda: None,
    ) -> None:
        self._db = db
        self._options = options
        self._allow_private_urls = allow_private_urls
        self._on_new_deliveries = on_new_deliveries

    async def receive_event(self, event: Incoming) -> Received:
        """Record the event once; a redelivery of the same id changes nothing."""
        return (await self.receive_events([event]))[0]

    async def receive_events(self, events: Sequence[Incoming]) -> list[Received]:
        """``receive_event`` for many events in one statement; answers in the order given. An id
        given twice is recorded once (the second is a duplicate)."""
        first: dict[UUID, NewEvent] = {}
        for event in events:
            if event.id not in first:
                first[event.id] = NewEvent(
                    event.id,
                    event.type,
                    event_body(event.payload),
                    event.created_at,
                    sorted(set(event.user_ids)),
                )
        async with self._db.writer().connection() as conn:
            created = await repository.insert_events(
                conn, list(first.values()), self._options.max_age_s
            )
        if any(created.values()):
            self._on_new_deliveries()
        answers = []
        for event in events:
            deliveries = created.pop(event.id, None)  # popped: a repeated id is a duplicate
            answers.append(Received(event.id, deliveries is None, deliveries or 0))
        return answers

    async def create_endpoint(
        self, user_id: UUID, url: str, idempotency_key: str | None
    ) -> tuple[WebhookEndpoint, bool]:
        """A new endpoint with a new secret (created True); with an ``idempotency_key`` seen
        before, the endpoint that key created (created False). A URL the rules of
        :mod:`~steadypay.notifications.urls` refuse is a ValidationError (400), whoever calls:
        the payment API checks the same rules first, but this service never relies on it."""
        url = check_webhook_url(
            url,
            production=not self._allow_private_urls,
            policy=self._options.delivery_policy,
        )
        async with self._db.writer().connection() as conn:
            endpoint, created = await repository.insert_endpoint(
                conn, user_id, url, new_secret(), idempotency_key
            )
        if not created and (endpoint.user_id, endpoint.url) != (user_id, url):
            raise IdempotencyKeyReuse(param="Idempotency-Key")
        return endpoint, created

    async def rotate_secret(
        self, endpoint_id: UUID, *, user_id: UUID | None, rotation_key: str | None
    ) -> WebhookEndpoint:
        async with self._db.writer().connection() as conn:
            endpoint = await repository.get_endpoint(conn, endpoint_id)
            _check_owner(endpoint, user_id)
            rotated = await repository.rotate_secret(
                conn, endpoint_id, new_secret(), self._options.rotation_window_s, rotation_key
            )
        assert rotated is not None  # endpoints are never deleted
        return rotated

    async def deliveries(
        self,
        endpoint_id: UUID,
        *,
        user_id: UUID | None,
        limit: int,
        starting_after: UUID | None,
    ) -> tuple[list[Delivery], bool]:
        async with self._db.reader(Consistency.BOUNDED).connection() as conn:
            _check_owner(await repository.get_endpoint(conn, endpoint_id), user_id)
            return await repository.deliveries_page(conn, endpoint_id, limit, starting_after)

    async def backlog(self, *, timeout_s: float = 1.0) -> dict[str, Any]:
        async with self._db.reader(Consistency.BOUNDED).connection() as conn:
            row = await repository.backlog(conn, timeout_s)
        oldest = row["oldest_due_s"]
        return {
            "due": row["pending"],
            "oldest_due_s": round(max(oldest, 0.0), 3) if oldest is not None else None,
        }


def _check_owner(endpoint: WebhookEndpoint | None, user_id: UUID | None) -> None:
    """Someone else's endpoint is reported as missing, like a missing one."""
    if endpoint is None or (user_id is not None and endpoint.user_id != user_id):
        raise NotFound("no such webhook endpoint", param="id")
