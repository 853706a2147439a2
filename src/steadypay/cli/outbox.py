"""`steadypay outbox relay`: deliver outbox events to the notification service until stopped.

Run one or several (on one host or many): leases keep them from delivering an event twice at
the same time. SIGTERM or SIGINT stops the relay after the batch in flight. The relay is built
by its composition root, :mod:`steadypay.bootstrap.relay`.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from steadypay.bootstrap.common import configure_logging
from steadypay.bootstrap.relay import relay_options, run_relay
from steadypay.cli.database import database
from steadypay.config import Settings

__all__ = ["relay_options", "run_outbox_relay"]


def run_outbox_relay(settings: Settings, *, data_dir: Path | None = None) -> None:
    """Blocks until SIGTERM/SIGINT. Uses STEADYPAY_DATABASE_URL, else the embedded cluster in
    ``data_dir``, the dependency ``notifications`` of STEADYPAY_DEPENDENCIES, and the relay's
    STEADYPAY_OUTBOX_* settings."""
    if settings.admin_key is None:
        raise SystemExit("the outbox relay needs STEADYPAY_ADMIN_KEY (the service's bearer key)")
    configure_logging(settings, "outbox-relay")
    with database(settings, (data_dir or settings.data_dir).absolute()) as target:
        asyncio.run(_until_signalled(settings, target.url))


async def _until_signalled(settings: Settings, url: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await run_relay(settings, url, stop)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
