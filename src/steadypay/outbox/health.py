"""Readiness probe of the outbox backlog, and the outbox gauges it keeps current."""

from __future__ import annotations

from typing import Any

from steadypay.db.router import DatabaseRouter
from steadypay.observability.gauges import OUTBOX_DEAD, OUTBOX_OLDEST_PENDING_AGE, OUTBOX_PENDING
from steadypay.observability.health import BacklogLimits, Check, Probe, backlog_checks
from steadypay.outbox.service import outbox_backlog


def outbox_probe(db: DatabaseRouter, limits: BacklogLimits, timeout_s: float) -> Probe:
    """``outbox:backlog`` (pending events) and ``outbox:oldestPendingAge`` (s): events waiting
    for the relay. Not critical (payments go on; notifications are late). Also refreshes the
    outbox gauges."""

    async def run() -> list[Check]:
        found = await outbox_backlog(db, timeout_s=timeout_s)
        _set_outbox_gauges(found)
        return backlog_checks("outbox", found["pending"], found["oldest_pending_age_s"], limits)

    return Probe("outbox:backlog", "component", False, run)


def _set_outbox_gauges(found: dict[str, Any]) -> None:
    OUTBOX_PENDING.set(found["pending"])
    OUTBOX_OLDEST_PENDING_AGE.set(found["oldest_pending_age_s"] or 0.0)
    OUTBOX_DEAD.set(found["dead"])
