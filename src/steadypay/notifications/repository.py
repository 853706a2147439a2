"""SQL of the notification service, all in the ``notifications`` schema (migration 0004).

Deliveries are claimed like outbox events: a lease taken in one statement with
``FOR UPDATE SKIP LOCKED``, and ``attempts`` as the fencing token of the claim.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from steadypay.notifications.domain import (
    ClaimedDelivery,
    Delivery,
    DeliveryStatus,
    WebhookEndpoint,
    signing_secrets,
)

ENDPOINT_COLUMNS = (
    "id, user_id, url, secret, previous_secret, previous_secret_expires_at, created_at, rotated_at"
)


def endpoint_from_row(row: asyncpg.Record) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=row["id"],
        user_id=row["user_id"],
        url=row["url"],
        secret=row["secret"],
        previous_secret=row["previous_secret"],
        previous_secret_expires_at=row["previous_secret_expires_at"],
        created_at=row["created_at"],
        rotated_at=row["rotated_at"],
    )


@dataclass(frozen=True, slots=True)
class NewEvent:
    id: UUID
    type: str
    body: str
    created_at: datetime
    user_ids: Sequence[UUID]


async def insert_events(
    conn: asyncpg.Connection, events: Sequence[NewEvent], max_age_s: float
) -> dict[UUID, int]:
    """Record events and fan each out to its users' active endpoints, in one statement (one
    transaction). An event id already received changes nothing. Returns, for each
    event that was new, the number of deliveries created; ids already received are absent.
    Ids must be distinct."""
    pairs = [(e.id, u) for e in events for u in e.user_ids]
    rows = await conn.fetch(
        """
        WITH new AS (
            INSERT INTO notifications.events (id, type, body, created_at)
            SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[])
            ON CONFLICT (id) DO NOTHING
            RETURNING id, created_at
        ), fanned AS (
            INSERT INTO notifications.deliveries (id, event_id, endpoint_id, give_up_at)
            SELECT gen_random_uuid(), new.id, e.id,
                   new.created_at + make_interval(secs => $7)
            FROM new
            JOIN unnest($5::uuid[], $6::uuid[]) AS p(event_id, user_id) ON p.event_id = new.id
            JOIN notifications.webhook_endpoints e
              ON e.user_id = p.user_id AND e.status = 'active'
            ON CONFLICT (event_id, endpoint_id) DO NOTHING
            RETURNING event_id
        )
        SELECT new.id, count(fanned.event_id) AS n
        FROM new LEFT JOIN fanned ON fanned.event_id = new.id
        GROUP BY new.id
        """,
        [e.id for e in events],
        [e.type for e in events],
        [e.body for e in events],
        [e.created_at for e in events],
        [event_id for event_id, _ in pairs],
        [user_id for _, user_id in pairs],
        float(max_age_s),
    )
    return {row["id"]: row["n"] for row in rows}


async def insert_endpoint(
    conn: asyncpg.Connection, user_id: UUID, url: str, secret: str, idempotency_key: str | None
) -> tuple[WebhookEndpoint, bool]:
    """(endpoint, created?). With a key already used, the endpoint that
    key created is returned instead (created False)."""
    row = await conn.fetchrow(
        f"""
        INSERT INTO notifications.webhook_endpoints (id, user_id, url, secret, idempotency_key)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING {ENDPOINT_COLUMNS}
        """,
        uuid.uuid4(),
        user_id,
        url,
        secret,
        idempotency_key,
    )
    created = row is not None
    if row is None:
        row = await conn.fetchrow(
            f"SELECT {ENDPOINT_COLUMNS} FROM notifications.webhook_endpoints "
            "WHERE idempotency_key = $1",
            idempotency_key,
        )
        assert row is not None  # unique keys are never deleted
    return endpoint_from_row(row), created


async def get_endpoint(conn: asyncpg.Connection, endpoint_id: UUID) -> WebhookEndpoint | None:
    row = await conn.fetchrow(
        f"SELECT {ENDPOINT_COLUMNS} FROM notifications.webhook_endpoints WHERE id = $1",
        endpoint_id,
    )
    return endpoint_from_row(row) if row else None


async def rotate_secret(
    conn: asyncpg.Connection,
    endpoint_id: UUID,
    new_secret: str,
    window_s: float,
    rotation_key: str | None,
) -> WebhookEndpoint | None:
    """The current secret becomes the previous one (valid ``window_s`` more), ``new_secret``
    the current one. A rotation with the same ``rotation_key`` as the last one is a replay and
    changes nothing. None if there is no such endpoint."""
    row = await conn.fetchrow(
        f"""
        UPDATE notifications.webhook_endpoints
        SET previous_secret = secret,
            previous_secret_expires_at = now() + make_interval(secs => $3),
            secret = $2, rotation_key = $4, rotated_at = now()
        WHERE id = $1 AND ($4::text IS NULL OR rotation_key IS DISTINCT FROM $4::text)
        RETURNING {ENDPOINT_COLUMNS}
        """,
        endpoint_id,
        new_secret,
        float(window_s),
        rotation_key,
    )
    if row is not None:
        return endpoint_from_row(row)
    return await get_endpoint(conn, endpoint_id)  # a replay, or missing


async def claim_deliveries(
    conn: asyncpg.Connection, limit: int, lease_s: float
) -> list[ClaimedDelivery]:
    rows = await conn.fetch(
        """
        WITH claimed AS (
            UPDATE notifications.deliveries d
            SET next_attempt_at = now() + make_interval(secs => $2),
                attempts = d.attempts + 1, last_attempt_at = now()
            WHERE d.id IN (
                SELECT id FROM notifications.deliveries
                WHERE status = 'pending' AND next_attempt_at <= now()
                ORDER BY next_attempt_at
                LIMIT $1
                FOR UPDATE SKIP LOCKED
            )
            RETURNING d.id, d.attempts, d.event_id, d.endpoint_id, d.give_up_at
        )
        SELECT c.id, c.attempts, c.event_id, c.give_up_at, ev.body,
               ep.url, ep.secret, ep.previous_secret, ep.previous_secret_expires_at, now() AS now
        FROM claimed c
        JOIN notifications.events ev ON ev.id = c.event_id
        JOIN notifications.webhook_endpoints ep ON ep.id = c.endpoint_id
        """,
        limit,
        float(lease_s),
    )
    claimed = []
    for r in rows:
        claimed.append(
            ClaimedDelivery(
                id=r["id"],
                attempts=r["attempts"],
                event_id=r["event_id"],
                url=r["url"],
                body=r["body"],
                secrets=signing_secrets(
                    r["secret"], r["previous_secret"], r["previous_secret_expires_at"], r["now"]
                ),
                give_up_at=r["give_up_at"],
            )
        )
    return claimed


async def mark_delivered(conn: asyncpg.Connection, delivery_id: UUID, status_code: int) -> None:
    await conn.execute(
        """
        UPDATE notifications.deliveries
        SET status = 'delivered', delivered_at = now(), last_status_code = $2, last_error = NULL
        WHERE id = $1 AND status = 'pending'
        """,
        delivery_id,
        status_code,
    )


async def record_failure(
    conn: asyncpg.Connection,
    delivery_id: UUID,
    attempts: int,
    *,
    status_code: int | None,
    error: str,
    delay_s: float,
) -> DeliveryStatus | None:
    """Schedule a retry, or ``failed`` once the next attempt would come after ``give_up_at``.
    None if the delivery was claimed again since (fenced by ``attempts``)."""
    status = await conn.fetchval(
        """
        UPDATE notifications.deliveries
        SET status = CASE WHEN now() + make_interval(secs => $5) > give_up_at
                          THEN 'failed' ELSE 'pending' END,
            next_attempt_at = now() + make_interval(secs => $5),
            last_status_code = $3, last_error = $4
        WHERE id = $1 AND attempts = $2 AND status = 'pending'
        RETURNING status
        """,
        delivery_id,
        attempts,
        status_code,
        error,
        float(delay_s),
    )
    return DeliveryStatus(status) if status is not None else None


async def record_refusal(
    conn: asyncpg.Connection, delivery_id: UUID, attempts: int, *, error: str
) -> DeliveryStatus | None:
    """``failed`` now, with ``error`` (the SSRF guard refused the address): no retry. None if
    the delivery was claimed again since (fenced by ``attempts``)."""
    status = await conn.fetchval(
        """
        UPDATE notifications.deliveries
        SET status = 'failed', last_status_code = NULL, last_error = $3
        WHERE id = $1 AND attempts = $2 AND status = 'pending'
        RETURNING status
        """,
        delivery_id,
        attempts,
        error,
    )
    return DeliveryStatus(status) if status is not None else None


async def release(conn: asyncpg.Connection, delivery_id: UUID, attempts: int) -> None:
    await conn.execute(
        """
        UPDATE notifications.deliveries
        SET next_attempt_at = now(), attempts = attempts - 1
        WHERE id = $1 AND attempts = $2 AND status = 'pending'
        """,
        delivery_id,
        attempts,
    )


async def deliveries_page(
    conn: asyncpg.Connection, endpoint_id: UUID, limit: int, starting_after: UUID | None
) -> tuple[list[Delivery], bool]:
    """An endpoint's deliveries, newest first; ``starting_after`` is a delivery id."""
    rows = await conn.fetch(
        """
        SELECT d.id, d.event_id, ev.type AS event_type, d.endpoint_id, d.status, d.attempts,
               d.last_status_code, d.last_error, d.created_at, d.last_attempt_at,
               d.next_attempt_at, d.delivered_at
        FROM notifications.deliveries d
        JOIN notifications.events ev ON ev.id = d.event_id
        WHERE d.endpoint_id = $1
          AND ($2::uuid IS NULL OR d.seq < (SELECT seq FROM notifications.deliveries
                                            WHERE id = $2 AND endpoint_id = $1))
        ORDER BY d.seq DESC
        LIMIT $3
        """,
        endpoint_id,
        starting_after,
        limit + 1,
    )
    page = [
        Delivery(
            id=r["id"],
            event_id=r["event_id"],
            event_type=r["event_type"],
            endpoint_id=r["endpoint_id"],
            status=DeliveryStatus(r["status"]),
            attempts=r["attempts"],
            last_status_code=r["last_status_code"],
            last_error=r["last_error"],
            created_at=r["created_at"],
            last_attempt_at=r["last_attempt_at"],
            next_attempt_at=r["next_attempt_at"],
            delivered_at=r["delivered_at"],
        )
        for r in rows[:limit]
    ]
    return page, len(rows) > limit


async def backlog(conn: asyncpg.Connection, timeout_s: float) -> asyncpg.Record:
    row = await conn.fetchrow(
        """
        SELECT count(*) AS pending,
               extract(epoch FROM now() - min(next_attempt_at))::float8 AS oldest_due_s
        FROM notifications.deliveries
        WHERE status = 'pending' AND next_attempt_at <= now()
        """,
        timeout=timeout_s,
    )
    assert row is not None
    return row
