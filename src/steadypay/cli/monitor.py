"""`steadypay monitor`: the health monitor in its own process, until SIGINT/SIGTERM.

Run one per site, or several: they elect a leader through a PostgreSQL advisory lock and only
the leader acts on a failover decision. ``steadypay up`` starts one against the API it serves.
The monitor itself is built by its composition root, :mod:`steadypay.bootstrap.monitor`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from steadypay.bootstrap.common import configure_logging
from steadypay.bootstrap.monitor import (
    MonitorOptions,
    monitor_until_stopped,
    options_from,
    start_metrics_server,
)
from steadypay.cli.database import database
from steadypay.config import Settings

__all__ = ["MonitorOptions", "options_from", "run_monitor"]


def run_monitor(
    settings: Settings, options: MonitorOptions, *, data_dir: Path | None = None
) -> None:
    """Blocks until SIGTERM/SIGINT. Uses STEADYPAY_DATABASE_URL, else the embedded cluster in
    ``data_dir``; needs STEADYPAY_ADMIN_KEY (the canary's accounts are made with it)."""
    if settings.admin_key is None:
        raise SystemExit("the monitor needs STEADYPAY_ADMIN_KEY (it sets up the canary with it)")
    configure_logging(settings, "monitor")
    with (
        database(settings, (data_dir or settings.data_dir).absolute()) as target,
        _metrics_server(options),
    ):
        asyncio.run(monitor_until_stopped(settings, target.url, options))


@contextmanager
def _metrics_server(options: MonitorOptions) -> Iterator[None]:
    if options.metrics_port is None:
        yield
        return
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # prometheus_client's own variable
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    server, thread = start_metrics_server(
        options.metrics_port, options.metrics_host, registry, options.metrics_token
    )
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
