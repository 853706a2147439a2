"""Metrics of the system's state: the database pool, probe latency, open holds, the last ledger
check, the outbox backlog, and the relay's delivery attempts.

Declared here, at module level, so that a test finds them in the default registry and so that
``steadypay.db.pool`` can use them without importing anything else of ours. How each gauge
combines several worker processes (prometheus_client multiprocess mode):

- ``livesum``: a quantity each worker has on its own (its pool's connections): summed.
- ``mostrecent``: a value every worker reads the same way (a count in PostgreSQL, a probe's
  latency): the value written last, by whichever worker handled the latest scrape or probe.
  A series that no worker has set yet is absent from the exposition (not 0).

The DB-derived gauges (holds, ledger check, outbox) are read by the API's ``/metrics`` handler
before it renders (``steadypay.observability.health``); the outbox ones also by each
``/health/ready``. When the database does not answer, they keep their last value.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

PROBE_LATENCY = Gauge(
    "steadypay_probe_latency_seconds",
    "Latency of the last health probe of a datastore (NaN when the probe failed)",
    ["service", "component"],
    multiprocess_mode="mostrecent",
)
HOLDS_OPEN = Gauge(
    "steadypay_holds_open",
    "Transfers held for review (status pending_review)",
    multiprocess_mode="mostrecent",
)
HOLDS_OPEN_AMOUNT = Gauge(
    "steadypay_holds_open_amount_minor",
    "Money reserved by open review holds, in minor units",
    ["currency"],
    multiprocess_mode="mostrecent",
)
LEDGER_CHECK_VIOLATIONS = Gauge(
    "steadypay_ledger_check_violations",
    "Violations found by the last recorded `steadypay ledger check`; -1 if none was recorded",
    multiprocess_mode="mostrecent",
)
LEDGER_CHECK_TIMESTAMP = Gauge(
    "steadypay_ledger_check_timestamp_seconds",
    "When the last recorded `steadypay ledger check` ran (Unix time); absent if never",
    multiprocess_mode="mostrecent",
)
BACKUP_VERIFIED_AGE = Gauge(
    "steadypay_backup_last_verified_age_seconds",
    "Age of the newest backup that a restore proved (NaN while none has passed)",
    multiprocess_mode="mostrecent",
)
BACKUP_VERIFIED_TIMESTAMP = Gauge(
    "steadypay_backup_last_verified_timestamp_seconds",
    "When the newest backup that a restore proved ended (Unix time)",
    multiprocess_mode="mostrecent",
)
OUTBOX_PENDING = Gauge(
    "steadypay_outbox_pending",
    "Outbox events waiting for delivery",
    multiprocess_mode="mostrecent",
)
OUTBOX_OLDEST_PENDING_AGE = Gauge(
    "steadypay_outbox_oldest_pending_age_seconds",
    "Age of the oldest pending outbox event (0 when none is pending)",
    multiprocess_mode="mostrecent",
)
OUTBOX_DEAD = Gauge(
    "steadypay_outbox_dead",
    "Dead-lettered outbox events (waiting for an operator's redeliver)",
    multiprocess_mode="mostrecent",
)
OUTBOX_DELIVERY_ATTEMPTS = Counter(
    "steadypay_outbox_delivery_attempts_total",
    "Outbox relay outcomes per claimed event: delivered, failed (retry scheduled), dead "
    "(dead-lettered), unrecorded (outcome not written: database down), deferred (released "
    "unattempted: its lease was too short)",
    ["outcome"],
)
