"""The pool gauges (defined beside the pool, which keeps them current)."""

from __future__ import annotations

from prometheus_client import Gauge

DB_POOL_CONNECTIONS = Gauge(
    "steadypay_db_pool_connections",
    "PostgreSQL pool connections by state: in_use, idle, waiting (callers blocked in acquire)",
    ["service", "state"],
    multiprocess_mode="livesum",
)
DB_POOL_SIZE_MAX = Gauge(
    "steadypay_db_pool_size_max",
    "The PostgreSQL pools' maximum size, summed over workers",
    ["service"],
    multiprocess_mode="livesum",
)
