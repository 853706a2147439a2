"""Metrics, logs and health: what an operator sees of steadypay.

Primitives only: this package knows no context (its callers feed it their probes and gauges).

- :mod:`~steadypay.observability.context` — the request id of the work in progress.
- :mod:`~steadypay.observability.logging` — structured logs (JSON lines, request id, redaction).
- :mod:`~steadypay.observability.metrics` — Prometheus metrics, correct with several workers.
- :mod:`~steadypay.observability.gauges` — gauges of the system's state (holds, ledger check,
  outbox backlog, probe latency).
- :mod:`~steadypay.observability.health` — readiness in the IETF health-check format: checks,
  probes and the report.
- :mod:`~steadypay.observability.sli` — per-minute SLI rollups, counted in memory, upserted.
- :mod:`~steadypay.observability.slo` — SLOs from the rollups: error budget, burn rates.
- :mod:`~steadypay.observability.cloudwatch` — CloudWatch export of the request metrics.

Offered to other packages: the names below. The CloudWatch exporter is imported from
:mod:`~steadypay.observability.cloudwatch` itself, so that a process that does not export
(the relay, the monitor, the CLI) does not load boto3.
"""

from steadypay.observability.context import REQUEST_ID_HEADER, current_request_id, request_id_var
from steadypay.observability.gauges import (
    HOLDS_OPEN,
    HOLDS_OPEN_AMOUNT,
    LEDGER_CHECK_TIMESTAMP,
    LEDGER_CHECK_VIOLATIONS,
    OUTBOX_DEAD,
    OUTBOX_DELIVERY_ATTEMPTS,
    OUTBOX_OLDEST_PENDING_AGE,
    OUTBOX_PENDING,
)
from steadypay.observability.health import (
    MEDIA_TYPE,
    BacklogLimits,
    Check,
    HealthReport,
    Probe,
    Readiness,
    Status,
    backlog_checks,
    pool_probe,
    postgresql_probe,
    redis_probe,
)
from steadypay.observability.logging import REDACTED, configure_logging, mask, redact
from steadypay.observability.metrics import (
    HTTP_DURATION,
    HTTP_REQUESTS,
    TRANSFER_AMOUNT,
    TRANSFERS,
    RequestObserver,
    render,
)
from steadypay.observability.sli import SliRecorder, SliRollups, excluded, sli_rollups
from steadypay.observability.slo import (
    BURN_RATE_PAIRS,
    LATENCY_BOUNDS_MS,
    SloReports,
    WindowCounts,
    burn_rate,
    slo_report,
    windows_for,
)

__all__ = [
    "BURN_RATE_PAIRS",
    "HOLDS_OPEN",
    "HOLDS_OPEN_AMOUNT",
    "HTTP_DURATION",
    "HTTP_REQUESTS",
    "LATENCY_BOUNDS_MS",
    "LEDGER_CHECK_TIMESTAMP",
    "LEDGER_CHECK_VIOLATIONS",
    "MEDIA_TYPE",
    "OUTBOX_DEAD",
    "OUTBOX_DELIVERY_ATTEMPTS",
    "OUTBOX_OLDEST_PENDING_AGE",
    "OUTBOX_PENDING",
    "REDACTED",
    "REQUEST_ID_HEADER",
    "TRANSFERS",
    "TRANSFER_AMOUNT",
    "BacklogLimits",
    "Check",
    "HealthReport",
    "Probe",
    "Readiness",
    "RequestObserver",
    "SliRecorder",
    "SliRollups",
    "SloReports",
    "Status",
    "WindowCounts",
    "backlog_checks",
    "burn_rate",
    "configure_logging",
    "current_request_id",
    "excluded",
    "mask",
    "pool_probe",
    "postgresql_probe",
    "redact",
    "redis_probe",
    "render",
    "request_id_var",
    "sli_rollups",
    "slo_report",
    "windows_for",
]
