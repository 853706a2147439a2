"""Per-request context: the request id, set by middleware and read by error rendering."""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from structlog.contextvars import bind_contextvars, unbind_contextvars

from steadypay.errors import SteadypayError
from steadypay.http.errors import render_error
from steadypay.observability.context import request_id_var

log = structlog.get_logger(__name__)

_request_id = request_id_var
_ACCEPTABLE = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


def request_id() -> str:
    return _request_id.get() or "req_unknown"


class RequestIdMiddleware:
    """Takes a sane ``X-Request-Id`` from the caller or makes one; echoes it in the response,
    and logs one ``http_request`` line per request (method, route template, status, duration;
    never headers, query strings or bodies, which may carry keys or personal data).

    It also turns an unexpected exception (a bug) into our 500 error body carrying the request
    id, so even that response can be traced in the logs.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"").decode(
            "latin-1"
        )
        rid = given if _ACCEPTABLE.match(given) else "req_" + secrets.token_hex(12)
        token = _request_id.set(rid)
        bind_contextvars(request_id=rid)

        started = False
        status = 500
        began = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled_error", path=scope.get("path"))
            if started:
                raise
            body = render_error(SteadypayError(), rid).encode()
            await send_with_id(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            quiet = template.startswith(("/health", "/metrics"))  # probes and scrapes
            (log.debug if quiet else log.info)(
                "http_request",
                method=scope["method"],
                route=template,
                status=status,
                duration_ms=round((time.perf_counter() - began) * 1000, 2),
            )
            _request_id.reset(token)
            unbind_contextvars("request_id")
