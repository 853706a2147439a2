"""The notification service: a separate process that receives outbox events from the relay,
fans each out to the webhook endpoints of the users it concerns (once per event and endpoint,
however often the event is redelivered), and delivers them signed, with retries for 72 hours.

The payment API reaches its internal API through :class:`~steadypay.notifications.client.
NotificationsClient`; webhook receivers check signatures with
:func:`steadypay.notifications.signing.verify`.

- :mod:`~steadypay.notifications.domain` — webhook endpoints, deliveries and their rules; plain
  Python.
- :mod:`~steadypay.notifications.options` — :class:`NotificationOptions`, the service's tunables.
- :mod:`~steadypay.notifications.service` — :class:`NotificationService`: receive events, manage
  endpoints, report deliveries.
- :mod:`~steadypay.notifications.worker` — :class:`DeliveryWorker`: POSTs signed events to webhook
  endpoints until they answer 2xx.
- :mod:`~steadypay.notifications.signing` — webhook signatures: signing, parsing, verifying.
- :mod:`~steadypay.notifications.routes` — the HTTP routers (``events``, ``internal``).
- :mod:`~steadypay.notifications.schemas` — request bodies of its HTTP API.
- :mod:`~steadypay.notifications.health` — its readiness (PostgreSQL, pool, worker, backlog).
- :mod:`~steadypay.notifications.client` — the payment API's adapter for its internal API.
- :mod:`~steadypay.notifications.repository` — its SQL (private to this package).

Offered to other packages (its composition root, :mod:`steadypay.bootstrap.notifications`, the
payment API, the relay's wiring, tests): the names below.
"""

from steadypay.notifications.client import DEPENDENCY, NotificationsClient
from steadypay.notifications.health import notification_readiness
from steadypay.notifications.options import NotificationOptions
from steadypay.notifications.routes import events, internal
from steadypay.notifications.service import NotificationService
from steadypay.notifications.signing import SignatureError, parse, sign, signature, verify
from steadypay.notifications.worker import DeliveryWorker, webhook_http_client

__all__ = [
    "DEPENDENCY",
    "DeliveryWorker",
    "NotificationOptions",
    "NotificationService",
    "NotificationsClient",
    "SignatureError",
    "events",
    "internal",
    "notification_readiness",
    "parse",
    "sign",
    "signature",
    "verify",
    "webhook_http_client",
]
