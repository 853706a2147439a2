"""Operator use cases on the outbox: list events, redeliver one, report the backlog."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from steadypay.db.router import Consistency, DatabaseRouter
from steadypay.errors import Conflict, NotFound, ValidationError
from steadypay.identity.audit import AuditEntry, record_in
from steadypay.outbox import repository
from steadypay.outbox.domain import OutboxEvent, OutboxStatus


async def list_events(
    db: DatabaseRouter, status: OutboxStatus, *, limit: int = 10, starting_after: UUID | None = None
) -> tuple[list[OutboxEvent], bool]:
    """A page of events with ``status``, oldest first; ``starting_after`` is an event id."""
    async with db.reader(Consistency.BOUNDED).connection() as conn:
        after_seq = None
        if starting_after is not None:
            after_seq = await repository.seq_of(conn, starting_after)
            if after_seq is None:
                raise ValidationError("starting_after is not an event id", param="starting_after")
        return await repository.page(conn, status, limit, after_seq)


async def redeliver(
    db: DatabaseRouter, event_id: UUID, audit: AuditEntry | None = None
) -> OutboxEvent:
    """Put a dead (or pending) event back in line, due now; ``audit`` (the operator's request)
    is written in the same transaction.

    A dead event is older than the relay's ``max_age_s``, so it gets one more attempt: delivered
    if it succeeds, dead again at once if it fails.
    """
    async with db.writer().transaction() as conn:
        event = await repository.make_due(conn, event_id)
        if event is not None:
            if audit is not None:
                await record_in(conn, audit)
            return event
        status = await repository.status_of(conn, event_id)
    if status is None:
        raise NotFound("no such outbox event", param="id")
    raise Conflict(f"the event is {status.value}; only pending or dead events can be redelivered")


async def outbox_backlog(db: DatabaseRouter, *, timeout_s: float = 1.0) -> dict[str, Any]:
    """For /health/ready: ``{"pending", "oldest_pending_age_s", "dead"}``."""
    async with db.reader(Consistency.BOUNDED).connection() as conn:
        row = await repository.backlog(conn, timeout_s)
    oldest = row["oldest_age_s"]
    return {
        "pending": row["pending"],
        "oldest_pending_age_s": round(max(oldest, 0.0), 3) if oldest is not None else None,
        "dead": row["dead"],
    }


class OutboxAdmin:
    """The operator's use cases on the outbox, on this process's database."""

    def __init__(self, db: DatabaseRouter) -> None:
        self._db = db

    async def list_events(
        self, status: OutboxStatus, *, limit: int = 10, starting_after: UUID | None = None
    ) -> tuple[list[OutboxEvent], bool]:
        return await list_events(self._db, status, limit=limit, starting_after=starting_after)

    async def redeliver(self, event_id: UUID, audit: AuditEntry | None = None) -> OutboxEvent:
        return await redeliver(self._db, event_id, audit)
