"""The health monitor's composition root: its pools, HTTP client, Redis, checks, canary,
leader lease and failover action, built from ``Settings`` and run until stopped.

The command (``steadypay monitor``, :mod:`steadypay.cli.monitor`) finds the database and
serves the metrics port (:func:`start_metrics_server`, guarded like every service's
``/metrics``); this builds and runs the monitor.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import socket
import socketserver
import threading
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import structlog
from prometheus_client import make_wsgi_app
from prometheus_client.registry import Collector

from steadypay.bootstrap.common import open_database, redis_for
from steadypay.config import Settings
from steadypay.db.pool import Database
from steadypay.http.errors import headers_for, render_error, status_for
from steadypay.http.service_auth import metrics_refusal
from steadypay.monitor.canary import Canary
from steadypay.monitor.checks import (
    ApiHealthCheck,
    DatabaseCheck,
    DependenciesCheck,
    Dependency,
    NamedCheck,
    PatroniClusterCheck,
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
    metrics_token: str | None = dataclasses.field(default=None, repr=False)
    """STEADYPAY_METRICS_TOKEN: required by the metrics port when set; unset, loopback only."""


def options_from(settings: Settings) -> MonitorOptions:
    return MonitorOptions(
        api_url=settings.monitor_api_url,
        interval_s=settings.monitor_interval_s,
        failure_threshold=settings.monitor_failure_threshold,
        recovery_threshold=settings.monitor_recovery_threshold,
        cooldown_s=settings.monitor_failover_cooldown_s,
        check_timeout_s=settings.monitor_check_timeout_s,
        metrics_port=settings.monitor_metrics_port,
        metrics_token=(
            settings.metrics_token.get_secret_value() if settings.metrics_token else None
        ),
    )


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


async def run_until(
    settings: Settings, dsn: str, options: MonitorOptions, stop: asyncio.Event
) -> None:
    """Build the monitor from settings and options, run it until ``stop``, close it all."""
    assert settings.admin_key is not None
    timeout = options.check_timeout_s
    monitor_id = options.monitor_id or f"{socket.gethostname()}:{os.getpid()}"
    async with contextlib.AsyncExitStack() as stack:
        # min_size 0: the pool opens even while the database is down (that is a failed round).
        # session_state: the canary holds session advisory locks on its pooled connection.
        db = await open_database(
            settings, "steadypay-monitor", url=dsn, max_size=3, min_size=0, session_state=True
        )
        stack.push_async_callback(db.close)
        check_db: Database = await open_database(
            settings,
            "steadypay-monitor-check",
            url=dsn,
            max_size=1,
            connect_timeout_s=timeout,
            acquire_timeout_s=timeout,
            statement_timeout_ms=max(1, int(timeout * 1000)),
            min_size=0,
            session_state=True,
        )
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
        redis = redis_for(settings, timeout_s=timeout)
        if redis is not None:
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
        if settings.monitor_patroni_urls:
            checks.append(
                NamedCheck(
                    "database_cluster",
                    PatroniClusterCheck(http, settings.monitor_patroni_urls, timeout),
                    timeout,
                )
            )
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


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def guarded_metrics_app(registry: Collector, token: str | None) -> WsgiApp:
    """prometheus_client's WSGI app behind the ``/metrics`` rule of every service
    (:func:`~steadypay.http.service_auth.metrics_refusal`), refusals in our error body."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        refusal = metrics_refusal(
            environ.get("REMOTE_ADDR"), environ.get("HTTP_AUTHORIZATION"), token
        )
        if refusal is None:
            answer: Iterable[bytes] = metrics(environ, start_response)
            return answer
        body = render_error(refusal, request_id="").encode()
        status = status_for(refusal)
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            *headers_for(refusal).items(),
        ]
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        return [body]

    return app


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _IPv6ThreadingServer(_ThreadingServer):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged (as prometheus_client's own server)."""


def start_metrics_server(
    port: int, host: str, registry: Collector, token: str | None
) -> tuple[WSGIServer, threading.Thread]:
    """The monitor's metrics port: a daemon thread serving :func:`guarded_metrics_app`."""
    server_class = _IPv6ThreadingServer if ":" in host else _ThreadingServer
    server = make_server(
        host,
        port,
        guarded_metrics_app(registry, token),
        server_class,
        handler_class=_QuietHandler,
    )
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    return server, thread
