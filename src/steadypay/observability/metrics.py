"""Prometheus metrics of every steadypay service, correct with several worker processes.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``steadypay up`` sets one directory per service),
prometheus_client keeps each worker's values in memory-mapped files and ``/metrics`` sums them
over all workers (``MultiProcessCollector``); gauges declare how to combine workers. Without it,
the process's own registry is served. The variable must be set before the process starts:
prometheus_client chooses its storage at import time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any, Protocol

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "steadypay_http_requests_total",
    "HTTP requests by route template and status",
    ["service", "route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "steadypay_http_request_duration_seconds",
    "HTTP request duration by route template",
    ["service", "route"],
    buckets=LATENCY_BUCKETS,
)
TRANSFERS = Counter(
    "steadypay_transfers_total", "Transfers recorded, by type and status", ["type", "status"]
)
TRANSFER_AMOUNT = Counter(
    "steadypay_transfer_amount_minor_total",
    "Money moved by completed transfers, in minor units",
    ["currency", "type"],
)


def render() -> tuple[bytes, str]:
    """The exposition of this service: summed over its workers in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


class RequestObserver(Protocol):
    """Told of every finished HTTP request (the SLI rollups, the CloudWatch exporter).

    Called on the request path, after the response: it must only record in memory and never
    block or raise; anything slow (a database write, a network call) belongs in its own
    background task.
    """

    def observe(
        self, service: str, route: str, method: str, status: int, duration_s: float
    ) -> None: ...


class MetricsMiddleware:
    """RED metrics per route *template* (``/v1/transfers/{transfer_id}``), never a raw path:
    the router records the matched route in the scope, read here after the response.

    ``observers`` is a list the app owns (``app.state.request_observers``): its lifespan adds
    the observers it starts, so they see every request after that."""

    def __init__(
        self, app: ASGIApp, service: str, observers: Sequence[RequestObserver] = ()
    ) -> None:
        self.app = app
        self.service = service
        self.observers = observers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            elapsed = time.perf_counter() - started
            HTTP_REQUESTS.labels(self.service, template, scope["method"], str(status)).inc()
            HTTP_DURATION.labels(self.service, template).observe(elapsed)
            for observer in self.observers:
                try:
                    observer.observe(self.service, template, scope["method"], status, elapsed)
                except Exception:  # an observer's bug must never fail a payment
                    log.exception("request_observer_failed", observer=type(observer).__name__)
