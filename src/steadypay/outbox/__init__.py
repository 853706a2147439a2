"""The transactional outbox's relay: delivers ``outbox_events`` rows to the notification service,
at least once, with leases so that several relays never deliver one event at the same time.

- :mod:`~steadypay.outbox.domain` — outbox events as the relay and the admin API see them, and
  the relay's retry schedule; plain Python.
- :mod:`~steadypay.outbox.options` — :class:`RelayOptions`, the relay's tunables.
- :mod:`~steadypay.outbox.relay` — :class:`OutboxRelay`: claims due events and POSTs them.
- :mod:`~steadypay.outbox.service` — operator use cases (:class:`OutboxAdmin`): list events,
  redeliver one, report the backlog.
- :mod:`~steadypay.outbox.health` — the backlog's readiness probe and the outbox gauges.
- :mod:`~steadypay.outbox.repository` — SQL over ``outbox_events`` (private to this package).

Offered to other packages (the relay's and the API's composition roots, the admin routes,
tests): the names below.
"""

from steadypay.outbox.domain import OutboxEvent, OutboxStatus, RelayStats, event_json
from steadypay.outbox.health import outbox_probe
from steadypay.outbox.options import RelayOptions
from steadypay.outbox.relay import OutboxRelay
from steadypay.outbox.service import OutboxAdmin, list_events, outbox_backlog, redeliver

__all__ = [
    "OutboxAdmin",
    "OutboxEvent",
    "OutboxRelay",
    "OutboxStatus",
    "RelayOptions",
    "RelayStats",
    "event_json",
    "list_events",
    "outbox_backlog",
    "outbox_probe",
    "redeliver",
]
