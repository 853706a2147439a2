"""SQL over ``outbox_events`` (table of migration 0002).

A claim is a lease: it moves ``next_attempt_at`` past the lease and bumps ``attempts``, in one
statement whose inner SELECT takes row locks with SKIP LOCKED, so two relays claiming at the
same moment get disjoint rows, and a row claimed by one is not due for another until the lease
ends. ``attempts`` is the claim's fencing token: the outcome of an attempt is written only if
nobody has claimed the event since (``WHERE attempts = $claimed``).
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import asyncpg

from steadypay.outbox.domain import OutboxEvent, OutboxStatus

COLUMNS = (
    "id, seq, type, transfer_id, payload, status, attempts, next_attempt_at, last_error, "
    "created_at, delivered_at"
)


def event_from_row(row: asyncpg.Record) -> OutboxEvent:
    payload: Any = row["payload"]
    if isinstance(payload, str):  # jsonb arrives as text unless a codec is installed
        payload = json.loads(payload)
    return OutboxEvent(
        id=row["id"],
        seq=row["seq"],
        type=row["type"],
        transfer_id=row["transfer_id"],
        payload=payload,
        status=OutboxStatus(row["status"]),
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        last_error=row["last_error"],
        created_at=row["created_at"],
        delivered_at=row["delivered_at"],
    )


async def claim(conn: asyncpg.Connection, limit: int, lease_s: float) -> list[OutboxEvent]:
    rows = await conn.fetch(
        f"""
        UPDATE outbox_events
        SET next_attempt_at = now() + make_interval(secs => $2), attempts = attempts + 1
        WHERE id IN (
            SELECT id FROM outbox_events
            WHERE status = 'pending' AND next_attempt_at <= now()
            ORDER BY seq
            LIMIT $1
            FOR UPDATE SKIP LOCKED
        )
        RETURNING {COLUMNS}
        """,
        limit,
        float(lease_s),
    )
    return sorted((event_from_row(r) for r in rows), key=lambda e: e.seq)


async def mark_delivered_many(conn: asyncpg.Connection, event_ids: list[UUID]) -> int:
    """Mark events delivered, in one statement; how many were still pending. Delivered is
    final whoever delivered it, so this needs no fencing."""
    status = await conn.execute(
        """
        UPDATE outbox_events SET status = 'delivered', delivered_at = now()
        WHERE id = ANY($1::uuid[]) AND status = 'pending'
        """,
        event_ids,
    )
    return int(status.rsplit(" ", 1)[-1])


async def record_failure(
    conn: asyncpg.Connection,
    event_id: UUID,
    attempts: int,
    *,
    delay_s: float,
    error: str,
    max_age_s: float,
) -> OutboxStatus | None:
    """Schedule the next attempt, or give up (``dead``) on an event older than ``max_age_s``.
    None when someone claimed the event since (the write is fenced by ``attempts``)."""
    status = await conn.fetchval(
        """
        UPDATE outbox_events
        SET status = CASE WHEN created_at < now() - make_interval(secs => $5)
                          THEN 'dead' ELSE 'pending' END,
            next_attempt_at = now() + make_interval(secs => $3),
            last_error = $4
        WHERE id = $1 AND attempts = $2 AND status = 'pending'
        RETURNING status
        """,
        event_id,
        attempts,
        float(delay_s),
        error,
        float(max_age_s),
    )
    return OutboxStatus(status) if status is not None else None


async def release_many(conn: asyncpg.Connection, claims: list[tuple[UUID, int]]) -> None:
    """Give back claims that were not attempted, given as (event id, attempts): due now, the
    claim not counted. One statement, fenced by ``attempts`` like every outcome."""
    await conn.execute(
        """
        UPDATE outbox_events o SET next_attempt_at = now(), attempts = o.attempts - 1
        FROM unnest($1::uuid[], $2::int[]) AS c(id, attempts)
        WHERE o.id = c.id AND o.attempts = c.attempts AND o.status = 'pending'
        """,
        [event_id for event_id, _ in claims],
        [attempts for _, attempts in claims],
    )


async def page(
    conn: asyncpg.Connection, status: OutboxStatus, limit: int, after_seq: int | None
) -> tuple[list[OutboxEvent], bool]:
    """Events with ``status`` in ``seq`` order (oldest first), after the cursor."""
    rows = await conn.fetch(
        f"""
        SELECT {COLUMNS} FROM outbox_events
        WHERE status = $1 AND seq > $2
        ORDER BY seq
        LIMIT $3
        """,
        status.value,
        after_seq if after_seq is not None else 0,
        limit + 1,
    )
    events = [event_from_row(r) for r in rows[:limit]]
    return events, len(rows) > limit


async def seq_of(conn: asyncpg.Connection, event_id: UUID) -> int | None:
    seq: int | None = await conn.fetchval("SELECT seq FROM outbox_events WHERE id = $1", event_id)
    return seq


async def make_due(conn: asyncpg.Connection, event_id: UUID) -> OutboxEvent | None:
    """A dead or pending event back to pending, due now. None if missing or delivered."""
    row = await conn.fetchrow(
        f"""
        UPDATE outbox_events SET status = 'pending', next_attempt_at = now()
        WHERE id = $1 AND status IN ('pending', 'dead')
        RETURNING {COLUMNS}
        """,
        event_id,
    )
    return event_from_row(row) if row else None


async def status_of(conn: asyncpg.Connection, event_id: UUID) -> OutboxStatus | None:
    status = await conn.fetchval("SELECT status FROM outbox_events WHERE id = $1", event_id)
    return OutboxStatus(status) if status is not None else None


async def backlog(conn: asyncpg.Connection, timeout_s: float) -> asyncpg.Record:
    """Counts through the partial indexes on pending and dead rows (delivered rows, the
    overwhelming majority, are never scanned)."""
    row = await conn.fetchrow(
        """
        SELECT p.pending, p.oldest_age_s, d.dead
        FROM (SELECT count(*) AS pending,
                     extract(epoch FROM now() - min(created_at))::float8 AS oldest_age_s
              FROM outbox_events WHERE status = 'pending') AS p,
             (SELECT count(*) AS dead FROM outbox_events WHERE status = 'dead') AS d
        """,
        timeout=timeout_s,
    )
    assert row is not None
    return row
