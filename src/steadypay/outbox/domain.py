"""Outbox events as the relay and the admin API see them, and the relay's retry schedule.

Plain Python: no database driver, no web framework.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID


class OutboxStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    id: UUID
    seq: int
    type: str
    transfer_id: UUID | None
    payload: dict[str, Any]
    status: OutboxStatus
    attempts: int
    """Claims so far, this one included: the fencing token of the relay that holds the lease."""
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


@dataclass(slots=True)
class RelayStats:
    """What one ``run_once`` did."""

    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    """Failed and scheduled for a later attempt."""
    dead: int = 0
    """Failed after ``max_age_s``: given up on (an operator may redeliver them)."""
    deferred: int = 0
    """Not attempted because the lease could run out mid-delivery; released at once."""
    unrecorded: int = 0
    """Attempted, but the outcome could not be written (database trouble): the lease expires
    and the event is claimed again (the receiver dedupes by event id)."""


def describe_failure(status_code: int | None, detail: str, limit: int = 500) -> str:
    """``last_error`` text: short, one line."""
    prefix = f"HTTP {status_code}: " if status_code is not None else ""
    text = " ".join((prefix + detail).split())
    return text[:limit]


def event_json(event: OutboxEvent) -> dict[str, Any]:
    """An event as the admin API shows it (the payload is left out: it can be large)."""
    return {
        "id": str(event.id),
        "type": event.type,
        "status": event.status.value,
        "transfer_id": str(event.transfer_id) if event.transfer_id else None,
        "attempts": event.attempts,
        "next_attempt_at": event.next_attempt_at.isoformat(),
        "last_error": event.last_error,
        "created_at": event.created_at.isoformat(),
        "delivered_at": event.delivered_at.isoformat() if event.delivered_at else None,
    }
