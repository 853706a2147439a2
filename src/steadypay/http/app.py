"""The FastAPI app every steadypay service starts from, and the lifespan part they share.

:func:`service_app` installs the same stack everywhere — outermost first: request id (and the
500 body for a bug), RED metrics, the read-your-writes token, the service's own middleware
(the fault injector's HTTP hook), the receiving side of ``X-Deadline-Ms``, the input limits
(:mod:`steadypay.http.limits`: body size, strict JSON) — plus one error mapping and the health
and metrics routes. :func:`observed` is the part of a lifespan that starts the CloudWatch
export and the per-minute SLI rollups. What each service adds (its routes, its state, its
jobs) comes from its composition root in :mod:`steadypay.bootstrap`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from fastapi import FastAPI
from starlette.middleware import Middleware

from steadypay import __version__
from steadypay.config import Settings
from steadypay.db.router import DatabaseRouter
from steadypay.http import health
from steadypay.http.consistency import ConsistencyMiddleware
from steadypay.http.context import RequestIdMiddleware
from steadypay.http.deadline import DeadlineMiddleware
from steadypay.http.handlers import install_error_handlers
from steadypay.http.limits import InputLimitMiddleware, InputLimits
from steadypay.http.metrics import MetricsMiddleware
from steadypay.observability.cloudwatch import cloudwatch_export
from steadypay.observability.sli import sli_rollups

Lifespan = Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]


def service_app(
    *,
    title: str,
    description: str,
    service: str,
    lifespan: Lifespan,
    middleware: Sequence[Middleware] = (),
    health_routes: bool = True,
    limits: InputLimits | None = None,
) -> FastAPI:
    """A service's app with the shared stack. ``middleware`` goes inside the metrics (so that
    what it does is measured like the real thing) and the consistency token, and outside the
    deadline check; the input limits are innermost (``limits``: the defaults of
    :class:`~steadypay.config.InputLimitSettings` unless given). The lifespan puts the
    service's database router on ``app.state.database`` (read-your-writes tokens,
    :mod:`steadypay.http.consistency`)."""
    app = FastAPI(title=title, version=__version__, description=description, lifespan=lifespan)
    app.state.request_observers = []
    app.add_middleware(InputLimitMiddleware, limits=limits or InputLimits())
    app.add_middleware(DeadlineMiddleware)
    for extra in middleware:
        app.add_middleware(extra.cls, *extra.args, **extra.kwargs)
    app.add_middleware(ConsistencyMiddleware)
    app.add_middleware(MetricsMiddleware, service=service, observers=app.state.request_observers)
    app.add_middleware(RequestIdMiddleware)  # outermost: error bodies carry the request id
    install_error_handlers(app)
    if health_routes:
        app.include_router(health.router)
    app.include_router(health.metrics_router)
    return app


@contextlib.asynccontextmanager
async def observed(settings: Settings, db: DatabaseRouter, app: FastAPI) -> AsyncIterator[Any]:
    """For a service's lifespan: export to CloudWatch (when configured) and flush the SLI
    rollups of every request into PostgreSQL; ``app.state.sli`` is the rollups' recorder."""
    async with (
        cloudwatch_export(settings, app.state.request_observers),
        sli_rollups(settings, db, app.state.request_observers) as app.state.sli,
    ):
        yield app.state.sli
