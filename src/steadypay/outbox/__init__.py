"""The transactional outbox's relay: delivers ``outbox_events`` rows to the notification service,
at least once, with leases so that several relays never deliver one event at the same time."""

from steadypay.outbox.domain import OutboxEvent, OutboxStatus, RelayStats
from steadypay.outbox.relay import OutboxRelay
from steadypay.outbox.service import list_events, outbox_backlog, redeliver

__all__ = [
    "OutboxEvent",
    "OutboxRelay",
    "OutboxStatus",
    "RelayStats",
    "list_events",
    "outbox_backlog",
    "redeliver",
]
