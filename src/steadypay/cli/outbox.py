"""`steadypay outbox relay`: deliver outbox events to the notification service until stopped.

Run one or several (on one host or many): leases keep them from delivering an event twice at
the same time. SIGTERM or SIGINT stops the relay after the batch in flight.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
from pathlib import Path

import structlog

from steadypay.bootstrap import (
    build_dependencies,
    configure_logging,
    freeze_startup_objects,
    pool_options,
)
from steadypay.cli.database import database
from steadypay.config import Settings
from steadypay.db.pool import Database, create_database
from steadypay.errors import DatabaseUnavailable
from steadypay.notifications.client import DEPENDENCY
from steadypay.outbox.relay import OutboxRelay

log = structlog.get_logger(__name__)


def run_outbox_relay(
    settings: Settings,
    *,
    data_dir: Path | None = None,
    batch_size: int = 100,
    delivery_batch_size: int = 100,
    lease_s: float = 30.0,
    max_age_s: float = 72 * 3600,
    backoff_base_s: float = 1.0,
    backoff_cap_s: float = 600.0,
    idle_sleep_s: float = 0.5,
) -> None:
    """Blocks until SIGTERM/SIGINT. Uses STEADYPAY_DATABASE_URL, else the embedded cluster in
    ``data_dir``, and the dependency ``notifications`` of STEADYPAY_DEPENDENCIES."""
    if settings.admin_key is None:
        raise SystemExit("the outbox relay needs STEADYPAY_ADMIN_KEY (the service's bearer key)")
    configure_logging(settings, "outbox-relay")
    with database(settings, (data_dir or settings.data_dir).absolute()) as target:
        asyncio.run(
            _relay(
                settings,
                target.url,
                batch_size=batch_size,
                delivery_batch_size=delivery_batch_size,
                lease_s=lease_s,
                max_age_s=max_age_s,
                backoff_base_s=backoff_base_s,
                backoff_cap_s=backoff_cap_s,
                idle_sleep_s=idle_sleep_s,
            )
        )


async def _relay(
    settings: Settings,
    url: str,
    *,
    batch_size: int,
    delivery_batch_size: int,
    lease_s: float,
    max_age_s: float,
    backoff_base_s: float,
    backoff_cap_s: float,
    idle_sleep_s: float,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    assert settings.admin_key is not None
    dependencies = build_dependencies(settings)
    try:
        db = await _open_database(settings, url, stop)
        if db is None:
            return
        try:
            relay = OutboxRelay(
                db,
                dependencies[DEPENDENCY],
                batch_size=batch_size,
                delivery_batch_size=delivery_batch_size,
                lease_s=lease_s,
                max_age_s=max_age_s,
                backoff_base_s=backoff_base_s,
                backoff_cap_s=backoff_cap_s,
                headers={"Authorization": f"Bearer {settings.admin_key.get_secret_value()}"},
            )
            freeze_startup_objects()
            await relay.run_forever(stop, idle_sleep_s=idle_sleep_s)
        finally:
            await db.close()
    finally:
        await dependencies.aclose()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


async def _open_database(settings: Settings, url: str, stop: asyncio.Event) -> Database | None:
    """The pool, retried with backoff while the database is down; None if stopped first."""
    options = dataclasses.replace(
        pool_options(settings),
        min_size=1,
        max_size=max(2, min(settings.db_pool_max_size, 10)),
        application_name="steadypay-outbox-relay",
    )
    delay = 0.5
    while not stop.is_set():
        try:
            return await create_database(url, options)
        except DatabaseUnavailable:
            log.warning("outbox_relay_waiting_for_database", retry_in_s=delay)
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except TimeoutError:
                delay = min(delay * 2, 30.0)
    return None
