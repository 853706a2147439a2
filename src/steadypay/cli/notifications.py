"""`steadypay notifications serve`: the notification service, one process, until Ctrl-C.

It receives outbox events from the relay and delivers them to users' webhook endpoints. Its
tables are in the ``notifications`` schema (apply them with `steadypay migrate`).
"""

from __future__ import annotations

import uvicorn

from steadypay.bootstrap import configure_logging
from steadypay.bootstrap.notifications import create_notification_app
from steadypay.config import Settings
from steadypay.notifications.options import NotificationOptions


def run_notification_service(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 8010,
    options: NotificationOptions | None = None,
) -> None:
    """Blocks until SIGTERM/SIGINT (uvicorn's handlers; the lifespan stops the worker)."""
    if settings.database_url is None:
        raise SystemExit("the notification service needs STEADYPAY_DATABASE_URL")
    if settings.admin_key is None:
        raise SystemExit("the notification service needs STEADYPAY_ADMIN_KEY")
    configure_logging(settings, "notifications")
    uvicorn.run(
        create_notification_app(settings, options),
        host=host,
        port=port,
        log_level=settings.log_level,
        log_config=None,  # ours (configure_logging): JSON lines, redaction
        access_log=False,
        server_header=False,  # no 'Server: uvicorn' (docs/security.md)
        timeout_graceful_shutdown=10,
    )
