"""Prometheus metrics of every steadypay service, correct with several worker processes.

With ``PROMETHEUS_MULTIPROC_DIR`` set (``steadypay up`` sets one directory per service),
prometheus_client keeps each worker's values in memory-mapped files and ``/metrics`` sums them
over all workers (``MultiProcessCollector``); gauges declare how to combine workers. Without it,
the process's own registry is served. The variable must be set before the process starts:
prometheus_client chooses its storage at import time.
"""

from __future__ import annotations

import os
from typing import Protocol

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
