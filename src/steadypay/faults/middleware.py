"""The HTTP hook of fault injection, for every service's app.

Phase ``before``: the request fails (or waits) before its handler runs. Phase ``after``: the
handler runs to the end (its effects are committed) and then its response is thrown away and
replaced by the fault's error, as if the answer had been lost on the way back. Targets match
the request path by prefix (``/v1/transfers`` covers ``/v1/transfers/{id}``). Injected
responses carry ``X-Steadypay-Chaos: <kind>``.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from steadypay.errors import SteadypayError
from steadypay.faults.injector import (
    CHAOS_HEADER,
    FaultInjector,
    InjectedFault,
    injected_kind,
)
from steadypay.http.context import request_id
from steadypay.http.errors import headers_for, render_error, status_for

CONTROL_PATH = "/v1/admin/chaos"


class ChaosMiddleware:
    def __init__(self, app: ASGIApp, injector: FaultInjector) -> None:
        self.app = app
        self.injector = injector

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if (
            scope["type"] != "http"
            or not self.injector.config.enabled
            or path.startswith(CONTROL_PATH)  # switching chaos off is never itself failed
        ):
            await self.app(scope, receive, send)
            return
        try:
            await self.injector.inject("api", path, "before")
        except (SteadypayError, InjectedFault) as exc:
            await _drain(receive)  # as a real server would: the connection stays usable
            await self._fail(exc, send)
            return
        if not self.injector.active_rules("api", path, "after"):
            await self.app(scope, receive, send)
            return
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        await self.app(scope, receive, hold)  # the work is done, effects committed
        try:
            await self.injector.inject("api", path, "after")
        except (SteadypayError, InjectedFault) as exc:
            await self._fail(exc, send)
            return
        for message in held:
            await send(message)

    async def _fail(self, exc: Exception, send: Send) -> None:
        error = exc if isinstance(exc, SteadypayError) else SteadypayError()
        kind = injected_kind(exc) or "unknown"
        headers = [
            (b"content-type", b"application/json"),
            (CHAOS_HEADER.lower().encode(), kind.encode()),
            *((k.lower().encode(), v.encode()) for k, v in headers_for(error).items()),
        ]
        body = render_error(error, request_id()).encode()
        await send({"type": "http.response.start", "status": status_for(error), "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def _drain(receive: Receive) -> None:
    """Read the request body to its end, so that the keep-alive connection can carry the next
    request (an unread body makes the server close it without a word)."""
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
