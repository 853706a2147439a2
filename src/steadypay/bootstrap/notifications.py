"""The notification service's composition root: its pool, webhook client, delivery worker and
app (routes from :mod:`steadypay.notifications.routes`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import structlog
from fastapi import FastAPI
from starlette.middleware import Middleware

from steadypay.bootstrap.common import open_router, serving
from steadypay.config import Environment, NotificationSettings, Settings
from steadypay.faults import ChaosMiddleware, FaultInjector
from steadypay.http import service_app
from steadypay.http.health import guard_metrics
from steadypay.http.limits import InputLimits
from steadypay.http.service_auth import ServiceKeys
from steadypay.notifications.health import notification_readiness
from steadypay.notifications.options import NotificationOptions
from steadypay.notifications.routes import events, internal
from steadypay.notifications.service import NotificationService
from steadypay.notifications.worker import DeliveryWorker, webhook_http_client

log = structlog.get_logger(__name__)


def notification_options(settings: NotificationSettings) -> NotificationOptions:
    """The service's tunables from the STEADYPAY_WEBHOOK_* settings (the rest: the
    options' defaults)."""
    return NotificationOptions(
        rotation_window_s=settings.webhook_rotation_window_hours * 3600,
        max_age_s=settings.webhook_max_age_hours * 3600,
        delivery_timeout_s=settings.webhook_timeout_s,
        backoff_base_s=settings.webhook_backoff_base_s,
        backoff_cap_s=settings.webhook_backoff_cap_s,
    )


def create_notification_app(
    settings: Settings,
    options: NotificationOptions | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The notification service. Its database (the ``notifications`` schema of
    ``STEADYPAY_DATABASE_URL``), HTTP client and worker are made in the lifespan. Refuses to
    build without an internal service key (``STEADYPAY_INTERNAL_KEYS``, or outside production
    ``STEADYPAY_ADMIN_KEY`` to derive one from)."""
    keys = ServiceKeys(settings.accepted_internal_keys())
    opts = (options or notification_options(settings)).deployed(
        production=settings.env is Environment.PRODUCTION,
        allowed_networks=settings.webhook_allowed_networks,
    )
    allow_private = (
        opts.allow_private_urls
        if opts.allow_private_urls is not None
        else settings.env is not Environment.PRODUCTION
    )

    faults = FaultInjector()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = await open_router(
            settings,
            "steadypay-notifications",
            faults=faults,
            min_size=min(settings.db_pool_min_size, opts.pool_max_size),
            max_size=opts.pool_max_size,
        )
        http = webhook_http_client(opts, transport)
        worker = DeliveryWorker(db, http, opts)
        stop = asyncio.Event()
        app.state.db = db
        app.state.service = NotificationService(
            db, opts, allow_private_urls=allow_private, on_new_deliveries=worker.wake
        )
        app.state.worker_task = asyncio.create_task(worker.run_forever(stop))
        app.state.readiness = notification_readiness(
            settings, db, app.state.service, app.state.worker_task
        )
        try:
            async with serving(settings, db, app, faults):
                yield
        finally:
            stop.set()
            try:
                await asyncio.wait_for(app.state.worker_task, opts.delivery_timeout_s + 1)
            except TimeoutError:
                log.warning("webhook_worker_cancelled_at_shutdown")
            await http.aclose()
            await db.close()

    app = service_app(
        title="steadypay notifications",
        description="Receives outbox events and delivers them to users' webhook endpoints. "
        "Every route but health needs an internal service key (STEADYPAY_INTERNAL_KEYS) as "
        "`Authorization: Bearer <key>`, else 401.",
        service="notifications",
        lifespan=lifespan,
        limits=InputLimits.of(settings),
        middleware=[Middleware(ChaosMiddleware, injector=faults)],
    )
    app.state.internal_keys = keys
    guard_metrics(app, settings)
    for router in (events, internal):
        app.include_router(router)
    return app
