"""RED metrics of every request, by route template (the HTTP side of
:mod:`steadypay.observability.metrics`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from steadypay.observability.metrics import HTTP_DURATION, HTTP_REQUESTS, RequestObserver

log = structlog.get_logger(__name__)


class MetricsMiddleware:
    """RED metrics per route *template* (``/v1/transfers/{transfer_id}``), never a raw path:
    the router records the matched route in the scope, read here after the response.

    ``observers`` is a list the app owns (``app.state.request_observers``): its lifespan adds
    the observers it starts, so they see every request after that."""

    def __init__(
        self, app: ASGIApp, service: str, observers: Sequence[RequestObserver] = ()
    ) -> None:
        self.app = app
        self.service = service
        self.observers = observers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            elapsed = time.perf_counter() - started
            HTTP_REQUESTS.labels(self.service, template, scope["method"], str(status)).inc()
            HTTP_DURATION.labels(self.service, template).observe(elapsed)
            for observer in self.observers:
                try:
                    observer.observe(self.service, template, scope["method"], status, elapsed)
                except Exception:  # an observer's bug must never fail a payment
                    log.exception("request_observer_failed", observer=type(observer).__name__)
