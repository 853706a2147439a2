"""The notification service's readiness: PostgreSQL (critical), its pool, the delivery worker
(critical: without it no webhook leaves) and the backlog of due deliveries (a warning)."""

from __future__ import annotations

import asyncio

from steadypay.config import Settings
from steadypay.db.router import DatabaseRouter
from steadypay.notifications.service import NotificationService
from steadypay.observability.health import (
    BacklogLimits,
    Check,
    Probe,
    Readiness,
    Status,
    backlog_checks,
    pool_probe,
    postgresql_probe,
)


def worker_probe(task: asyncio.Task[None]) -> Probe:
    """``deliveryWorker:running``: true while the webhook delivery loop runs."""
    key = "deliveryWorker:running"

    async def run() -> list[Check]:
        if task.done():
            return [Check(key, "component", Status.FAIL, False, output="the worker stopped")]
        return [Check(key, "component", Status.PASS, True)]

    return Probe(key, "component", True, run)


def deliveries_probe(
    service: NotificationService, limits: BacklogLimits, timeout_s: float
) -> Probe:
    """``deliveries:backlog`` (webhook deliveries due now) and ``deliveries:oldestDueAge``
    (how long the most overdue one has been due, s)."""

    async def run() -> list[Check]:
        found = await service.backlog(timeout_s=timeout_s)
        return backlog_checks(
            "deliveries", found["due"], found["oldest_due_s"], limits, age_key="oldestDueAge"
        )

    return Probe("deliveries:backlog", "component", False, run)


def notification_readiness(
    settings: Settings, db: DatabaseRouter, service: NotificationService, worker: asyncio.Task[None]
) -> Readiness:
    timeout_s = settings.health_check_timeout_s
    limits = BacklogLimits(settings.health_backlog_warn, settings.health_backlog_age_warn_s)
    probes = [
        pool_probe(db),
        postgresql_probe(db, timeout_s),
        worker_probe(worker),
        deliveries_probe(service, limits, timeout_s),
    ]
    return Readiness("notifications", "steadypay notification service", probes, timeout_s=timeout_s)
