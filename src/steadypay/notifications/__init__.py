"""The notification service: a separate process that receives outbox events from the relay,
fans each out to the webhook endpoints of the users it concerns (once per event and endpoint,
however often the event is redelivered), and delivers them signed, with retries for 72 hours.

The payment API reaches its internal API through :class:`~steadypay.notifications.client.
NotificationsClient`; webhook receivers check signatures with
:func:`steadypay.notifications.signing.verify`.
"""
