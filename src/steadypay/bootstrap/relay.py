"""The outbox relay's composition root: its pool, its client of the notification service and
the process's fault injector, which follows the stored chaos configuration like every other
process's (a rule on ``dependency:notifications`` reaches the relay's calls)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog

from steadypay.bootstrap.common import (
    build_dependencies,
    freeze_startup_objects,
    open_database,
)
from steadypay.config import OutboxSettings, Settings
from steadypay.db.pool import Database
from steadypay.errors import DatabaseUnavailable
from steadypay.faults import FaultInjector, following
from steadypay.notifications.client import DEPENDENCY
from steadypay.outbox.options import RelayOptions
from steadypay.outbox.relay import OutboxRelay
from steadypay.resilience.retry import exponential_s

log = structlog.get_logger(__name__)

APPLICATION_NAME = "steadypay-outbox-relay"


def relay_options(settings: OutboxSettings) -> RelayOptions:
    """The relay's tunables from the STEADYPAY_OUTBOX_* settings (the rest: RelayOptions')."""
    return RelayOptions(
        batch_size=settings.outbox_batch_size,
        delivery_batch_size=settings.outbox_delivery_batch_size,
        lease_s=settings.outbox_lease_s,
        max_age_s=settings.outbox_max_age_hours * 3600,
        backoff_base_s=settings.outbox_backoff_base_s,
        backoff_cap_s=settings.outbox_backoff_cap_s,
    )


@contextlib.asynccontextmanager
async def built_relay(
    settings: Settings,
    url: str,
    stop: asyncio.Event,
    *,
    options: RelayOptions | None = None,
    faults: FaultInjector | None = None,
) -> AsyncIterator[OutboxRelay | None]:
    """The relay wired from ``settings`` on the database at ``url``, its injector following
    the chaos configuration; None if ``stop`` was set while waiting for the database. It
    sends the notification service the first internal key (``STEADYPAY_INTERNAL_KEYS``, or
    outside production the one derived from ``STEADYPAY_ADMIN_KEY``)."""
    internal_key = settings.internal_key()  # RuntimeError when there is none
    faults = faults or FaultInjector()
    dependencies = build_dependencies(settings, faults=faults)
    try:
        db = await _open_database(settings, url, stop, faults)
        if db is None:
            yield None
            return
        try:
            relay = OutboxRelay(
                db,
                dependencies[DEPENDENCY],
                options or relay_options(settings),
                headers={"Authorization": f"Bearer {internal_key}"},
            )
            async with following(db, settings, faults):
                yield relay
        finally:
            await db.close()
    finally:
        await dependencies.aclose()


async def run_relay(settings: Settings, url: str, stop: asyncio.Event) -> None:
    """Deliver until ``stop`` is set."""
    async with built_relay(settings, url, stop) as relay:
        if relay is None:
            return
        freeze_startup_objects()
        await relay.run_forever(stop)


async def _open_database(
    settings: Settings, url: str, stop: asyncio.Event, faults: FaultInjector
) -> Database | None:
    """The pool, retried with backoff (0.5 s doubling to 30 s) while the database is down;
    None if stopped first."""
    failures = 0
    while not stop.is_set():
        try:
            return await open_database(
                settings,
                APPLICATION_NAME,
                url=url,
                faults=faults,
                min_size=1,
                max_size=max(2, min(settings.db_pool_max_size, 10)),
            )
        except DatabaseUnavailable:
            delay = exponential_s(failures, 0.5, 30.0)
            log.warning("outbox_relay_waiting_for_database", retry_in_s=delay)
            failures += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
    return None
