"""The monitor's Prometheus metrics (served by ``steadypay monitor --metrics-port``).

In the default registry of the monitor's own process: the monitor is one process, so it needs
no multiprocess mode.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ROUNDS = Counter(
    "steadypay_monitor_rounds_total",
    "Monitoring rounds by result (healthy, failed)",
    ["result"],
)
CONSECUTIVE_FAILURES = Gauge(
    "steadypay_monitor_consecutive_failures",
    "Failed rounds counted toward the failover threshold",
    multiprocess_mode="mostrecent",
)
FAILOVERS = Counter(
    "steadypay_monitor_failovers_total",
    "Failover decisions by outcome (succeeded, failed, logged, suppressed)",
    ["outcome"],
)
IS_LEADER = Gauge(
    "steadypay_monitor_is_leader",
    "1 while this monitor holds the leader lease (only the leader acts)",
    multiprocess_mode="mostrecent",
)
CHECK_DURATION = Histogram(
    "steadypay_monitor_check_duration_seconds",
    "Duration of each check of a round",
    ["component"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
CLUSTER_MEMBERS = Gauge(
    "steadypay_monitor_db_cluster_members",
    "Database cluster members by role as their Patroni reports it (primary, replica, "
    "unreachable, other) at the last round",
    ["role"],
    multiprocess_mode="mostrecent",
)
