"""Read-your-writes over HTTP: the consistency token on the way out and on the way in.

A write request (POST, PUT, PATCH, DELETE) answered below 500 gets
``Steadypay-Consistency-Token: <the primary's WAL position once it was done>`` — when the
deployment has replicas (with one server every read is fresh and no token is sent). A request
that sends the token back is read, for everything that tolerates staleness, only from a server
that has replayed at least that far (:func:`steadypay.db.router.reading_after`). A malformed
token is ``400 validation_error``. The router is the one the service's lifespan put on
``app.state.database``.
"""

from __future__ import annotations

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from steadypay.db.router import (
    CONSISTENCY_TOKEN_HEADER,
    DatabaseRouter,
    format_lsn,
    parse_lsn,
    reading_after,
)
from steadypay.errors import DatabaseUnavailable, ValidationError
from steadypay.http.context import request_id
from steadypay.http.errors import render_error

log = structlog.get_logger(__name__)

_HEADER = CONSISTENCY_TOKEN_HEADER.lower().encode("latin-1")
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class ConsistencyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = next((v for k, v in scope["headers"] if k == _HEADER), None)
        after = None
        if raw is not None:
            try:
                after = parse_lsn(raw.decode("latin-1"))
            except ValueError:
                await _drain(receive)  # as a real server would: the connection stays usable
                error = ValidationError(
                    f"{CONSISTENCY_TOKEN_HEADER} must be a token this API answered",
                    param=CONSISTENCY_TOKEN_HEADER,
                )
                await _reject(error, send)
                return
        router: DatabaseRouter | None = getattr(scope["app"].state, "database", None)
        sending = send
        if router is not None and scope["method"] in _WRITES:

            async def sending(message: Message) -> None:
                if message["type"] == "http.response.start" and message["status"] < 500:
                    position = await _position(router)
                    if position is not None:
                        token = (_HEADER, format_lsn(position).encode("latin-1"))
                        message["headers"] = [*message.get("headers", []), token]
                await send(message)

        with reading_after(after):
            await self.app(scope, receive, sending)


async def _position(router: DatabaseRouter) -> int | None:
    try:
        return await router.position()
    except DatabaseUnavailable:  # the write is done; only its token is missing
        log.warning("consistency_token_unavailable")
        return None


async def _reject(error: ValidationError, send: Send) -> None:
    body = render_error(error, request_id()).encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 400, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _drain(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
