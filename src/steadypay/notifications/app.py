"""The notification service's ASGI app: its routes, and the delivery worker in its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator

import httpx
import structlog
from fastapi import FastAPI

from steadypay import __version__
from steadypay.api.app import install_error_handlers
from steadypay.api.context import RequestIdMiddleware
from steadypay.api.routes.health import metrics_router
from steadypay.bootstrap import freeze_startup_objects, pool_options
from steadypay.chaos import runtime as chaos_runtime
from steadypay.chaos.middleware import ChaosMiddleware
from steadypay.config import Environment, Settings
from steadypay.db.pool import create_database
from steadypay.notifications.health import notification_readiness
from steadypay.notifications.options import NotificationOptions
from steadypay.notifications.routes import events, health, internal
from steadypay.notifications.service import NotificationService
from steadypay.notifications.worker import DeliveryWorker, webhook_http_client
from steadypay.observability.cloudwatch import cloudwatch_export
from steadypay.observability.metrics import MetricsMiddleware
from steadypay.observability.sli import sli_rollups

log = structlog.get_logger(__name__)


def create_notification_app(
    settings: Settings,
    options: NotificationOptions | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The notification service. Its database (the ``notifications`` schema of
    ``STEADYPAY_DATABASE_URL``), HTTP client and worker are made in the lifespan."""
    if settings.admin_key is None:
        raise RuntimeError("the notification service needs STEADYPAY_ADMIN_KEY")
    admin_key = settings.admin_key.get_secret_value()
    opts = options or NotificationOptions()
    allow_private = (
        opts.allow_private_urls
        if opts.allow_private_urls is not None
        else settings.env is not Environment.PRODUCTION
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = dataclasses.replace(
            pool_options(settings),
            min_size=min(settings.db_pool_min_size, opts.pool_max_size),
            max_size=opts.pool_max_size,
            application_name="steadypay-notifications",
        )
        db = await create_database(settings.require_database_url(), pool)
        http = webhook_http_client(opts, transport)
        worker = DeliveryWorker(db, http, opts)
        stop = asyncio.Event()
        app.state.db = db
        app.state.admin_key = admin_key
        app.state.service = NotificationService(
            db, opts, allow_private_urls=allow_private, on_new_deliveries=worker.wake
        )
        app.state.worker_task = asyncio.create_task(worker.run_forever(stop))
        app.state.readiness = notification_readiness(
            settings, db, app.state.service, app.state.worker_task
        )
        try:
            async with (
                cloudwatch_export(settings, app.state.request_observers),
                sli_rollups(settings, db, app.state.request_observers) as app.state.sli,
                chaos_runtime.following(db, settings),
            ):
                freeze_startup_objects()
                yield
        finally:
            stop.set()
            try:
                await asyncio.wait_for(app.state.worker_task, opts.delivery_timeout_s + 1)
            except TimeoutError:
                log.warning("webhook_worker_cancelled_at_shutdown")
            await http.aclose()
            await db.close()

    app = FastAPI(
        title="steadypay notifications",
        version=__version__,
        description="Receives outbox events and delivers them to users' webhook endpoints.",
        lifespan=lifespan,
    )
    app.state.request_observers = []
    app.add_middleware(ChaosMiddleware)
    app.add_middleware(
        MetricsMiddleware, service="notifications", observers=app.state.request_observers
    )
    app.add_middleware(RequestIdMiddleware)
    install_error_handlers(app)
    for router in (health, events, internal, metrics_router):
        app.include_router(router)
    return app
