"""``X-Deadline-Ms`` on the receiving side: the caller's budget bounds our work.

The caller (:class:`~steadypay.resilience.client.ReliableServiceClient`) sends the milliseconds
it has left. A request whose budget is already spent (``<= 0``) gets ``504 deadline_exceeded``
at once, before its body is read; otherwise the deadline is available to the handler through
:func:`current_deadline`, which bounds its work with it. A header that is not an integer is a
``400 validation_error``.
"""

from __future__ import annotations

import json
import re
from contextvars import ContextVar
from typing import Final

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from steadypay.errors import ValidationError
from steadypay.http.context import request_id
from steadypay.http.errors import error_body, render_error
from steadypay.resilience.clock import SYSTEM_CLOCK, Clock
from steadypay.resilience.deadline import DEADLINE_HEADER, Deadline

DEADLINE_EXCEEDED: Final = "deadline_exceeded"
_HEADER: Final = DEADLINE_HEADER.lower().encode("latin-1")
_INTEGER: Final = re.compile(r"[+-]?[0-9]{1,15}")

_deadline: ContextVar[Deadline | None] = ContextVar("fraud_deadline", default=None)


def current_deadline() -> Deadline | None:
    return _deadline.get()


def deadline_exceeded_response() -> Response:
    """504 with our error body: the caller's budget ran out before we could answer."""
    body = error_body(
        DEADLINE_EXCEEDED,
        f"the caller's deadline ({DEADLINE_HEADER}) passed before the check could finish",
        param=DEADLINE_HEADER,
        request_id=request_id(),
        extra=None,
    )
    return Response(json.dumps(body, separators=(",", ":")), 504, media_type="application/json")


class DeadlineMiddleware:
    def __init__(self, app: ASGIApp, clock: Clock = SYSTEM_CLOCK) -> None:
        self.app = app
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = next((v for k, v in scope["headers"] if k == _HEADER), None)
        if raw is None:
            await self.app(scope, receive, send)
            return
        text = raw.decode("latin-1").strip()
        if not _INTEGER.fullmatch(text):
            error = ValidationError(
                f"{DEADLINE_HEADER} must be an integer number of milliseconds",
                param=DEADLINE_HEADER,
            )
            response = Response(
                render_error(error, request_id()), 400, media_type="application/json"
            )
            await response(scope, receive, send)
            return
        milliseconds = int(text)
        if milliseconds <= 0:
            await deadline_exceeded_response()(scope, receive, send)
            return
        token = _deadline.set(Deadline.after(milliseconds / 1000, self.clock))
        try:
            await self.app(scope, receive, send)
        finally:
            _deadline.reset(token)
