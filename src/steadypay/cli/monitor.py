"""`steadypay monitor`: the health monitor in its own process, until SIGINT/SIGTERM.

Run one per site, or several: they elect a leader through a PostgreSQL advisory lock and only
the leader acts on a failover decision. ``steadypay up`` starts one against the API it serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import structlog
from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

from steadypay.bootstrap import configure_logging, pool_options
from steadypay.cli.database import database
from steadypay.config import Settings
from steadypay.db.pool import Database, PoolOptions, create_database
from steadypay.monitor.canary import Canary
from steadypay.monitor.checks import (
    ApiHealthCheck,
    DatabaseCheck,
    DependenciesCheck,
    Dependency,
    NamedCheck,
)
from steadypay.monitor.lease import LeaderLease
from steadypay.monitor.service import Monitor, MonitorConfig, build_action

log = structlog.get_logger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class MonitorOptions:
    api_url: str
    interval_s: float
    failure_threshold: int
    recovery_threshold: int
    cooldown_s: float
    check_timeout_s: float
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    monitor_id: str | None = None


def options_from(settings: Settings) -> MonitorOptions:
    return MonitorOptions(
        api_url=settings.monitor_api_url,
        interval_s=settings.monitor_interval_s,
        failure_threshold=settings.monitor_failure_threshold,
        recovery_threshold=settings.monitor_recovery_threshold,
        cooldown_s=settings.monitor_failover_cooldown_s,
        check_timeout_s=settings.monitor_check_timeout_s,
        metrics_port=settings.monitor_metrics_port,
    )


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
    server, thread = start_http_server(options.metrics_port, options.metrics_host, registry)
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


async def monitor_until_stopped(settings: Settings, dsn: str, options: MonitorOptions) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await run_until(settings, dsn, options, stop)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def _small_pool(settings: Settings, max_size: int, name: str) -> PoolOptions:
    # min_size 0: the pool opens even while the database is down (that is a failed round).
    # session_state: the canary holds session advisory locks on its pooled connection.
    return dataclasses.replace(
        pool_options(settings),
        min_size=0,
        max_size=max_size,
        application_name=name,
        session_state=True,
    )


async def run_until(
    settings: Settings, dsn: str, options: MonitorOptions, stop: asyncio.Event
) -> None:
    """Build the monitor from settings and options, run it until ``stop``, close it all."""
    assert settings.admin_key is not None
    timeout = options.check_timeout_s
    monitor_id = options.monitor_id or f"{socket.gethostname()}:{os.getpid()}"
    async with contextlib.AsyncExitStack() as stack:
        db = await create_database(dsn, _small_pool(settings, 3, "steadypay-monitor"))
        stack.push_async_callback(db.close)
        probe = dataclasses.replace(
            _small_pool(settings, 1, "steadypay-monitor-check"),
            connect_timeout_s=timeout,
            acquire_timeout_s=timeout,
            statement_timeout_ms=max(1, int(timeout * 1000)),
        )
        check_db: Database = await create_database(dsn, probe)
        stack.push_async_callback(check_db.close)
        # No keep-alive: rounds are seconds apart, and reusing a connection the server is just
        # closing for idleness (uvicorn: after 5 s) fails a round with "server disconnected";
        # a fresh connection per call also checks what a new client would go through.
        http = await stack.enter_async_context(
            httpx.AsyncClient(
                base_url=options.api_url,
                timeout=timeout,
                limits=httpx.Limits(max_keepalive_connections=0),
            )
        )
        redis = None
        if settings.redis_url is not None:
            from steadypay.resilience.redis_store import redis_client

            redis = redis_client(settings.redis_url.get_secret_value(), timeout_s=timeout)
            stack.push_async_callback(redis.aclose)
        services = [
            Dependency(name, dep.url, dep.critical)
            for name, dep in settings.dependency_settings().items()
            if dep.url is not None
        ]
        canary = Canary(
            http,
            db,
            settings.admin_key.get_secret_value(),
            currency=settings.monitor_canary_currency,
            amount_minor=settings.monitor_canary_amount_minor,
            top_up_minor=max(100, settings.monitor_canary_amount_minor * 100),
        )
        checks = [
            NamedCheck("api", ApiHealthCheck(http, options.api_url, timeout), timeout),
            NamedCheck("database", DatabaseCheck(check_db, timeout), timeout),
            NamedCheck("payments", canary, timeout),
            NamedCheck("dependencies", DependenciesCheck(http, services, redis, timeout), timeout),
        ]
        monitor = Monitor(
            config=MonitorConfig(
                monitor_id=monitor_id,
                interval_s=options.interval_s,
                failure_threshold=options.failure_threshold,
                recovery_threshold=options.recovery_threshold,
                cooldown_s=options.cooldown_s,
                retention_s=settings.monitor_retention_days * 86_400,
                action_timeout_s=settings.monitor_failover_timeout_s,
            ),
            checks=checks,
            db=db,
            lease=LeaderLease(dsn, timeout_s=min(timeout, 5.0)),
            action=build_action(settings, http),
        )
        log.info(
            "monitor_started",
            monitor_id=monitor_id,
            api=options.api_url,
            interval_s=options.interval_s,
            action=monitor.action.name,
        )
        await wait_for_api(http, options.api_url, min(options.interval_s, 60.0), stop)
        await monitor.run(stop)
        log.info("monitor_stopped", monitor_id=monitor_id)


async def wait_for_api(
    http: httpx.AsyncClient, api_url: str, grace_s: float, stop: asyncio.Event
) -> None:
    """Before the first round, give an API that is starting (under `steadypay up`) up to
    ``grace_s`` to answer /health/live, so a cold start is not recorded as a failed round."""
    url = api_url.rstrip("/") + "/health/live"
    deadline = asyncio.get_running_loop().time() + grace_s
    while not stop.is_set() and asyncio.get_running_loop().time() < deadline:
        try:
            if (await http.get(url, timeout=1.0)).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=0.25)
