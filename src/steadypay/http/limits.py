"""Request body limits of every steadypay service, before a handler sees the body.

:class:`InputLimitMiddleware` (pure ASGI; :func:`steadypay.http.app.service_app` installs it
innermost, so that the request id, metrics, rate limits and the deadline check come first):

- a body larger than the route's limit is ``413 payload_too_large`` (our error body, with
  ``max_body_bytes``, and ``Connection: close``) *before it is read in full*: at once when
  ``Content-Length`` says so, else as soon as a chunked body crosses the limit. The limit is
  ``STEADYPAY_HTTP_MAX_BODY_BYTES`` (1 MiB), and ``STEADYPAY_HTTP_MAX_BATCH_BODY_BYTES`` (8 MiB)
  on the batch routes the app names;
- a JSON body (``application/json``, ``application/*+json``, or no ``Content-Type``) is read
  (bounded, as above) and checked by :func:`steadypay.http.strict_json.problem`: duplicate keys,
  nesting deeper than ``STEADYPAY_HTTP_MAX_JSON_DEPTH``, NUL and lone surrogates, malformed
  JSON are ``400 validation_error``; a body that passes is handed on unchanged.

Requests without a body (no ``Content-Length``, no ``Transfer-Encoding``) pass untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from steadypay.config.contexts import (
    HTTP_MAX_BATCH_BODY_BYTES,
    HTTP_MAX_BODY_BYTES,
    HTTP_MAX_JSON_DEPTH,
    InputLimitSettings,
)
from steadypay.errors import PayloadTooLarge, SteadypayError, ValidationError
from steadypay.http.context import request_id
from steadypay.http.errors import render_error, status_for
from steadypay.http.strict_json import problem


@dataclass(frozen=True, slots=True)
class InputLimits:
    """The limits an app enforces; ``batch_paths`` get the larger body limit."""

    max_body_bytes: int = HTTP_MAX_BODY_BYTES
    max_batch_body_bytes: int = HTTP_MAX_BATCH_BODY_BYTES
    max_json_depth: int = HTTP_MAX_JSON_DEPTH
    batch_paths: frozenset[str] = frozenset()

    @classmethod
    def of(cls, settings: InputLimitSettings) -> InputLimits:
        return cls(
            max_body_bytes=settings.http_max_body_bytes,
            max_batch_body_bytes=settings.http_max_batch_body_bytes,
            max_json_depth=settings.http_max_json_depth,
        )

    def body_limit(self, path: str) -> int:
        return self.max_batch_body_bytes if path in self.batch_paths else self.max_body_bytes


class InputLimitMiddleware:
    def __init__(self, app: ASGIApp, limits: InputLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length: bytes | None = None
        chunked = False
        content_type: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"content-type" and content_type is None:
                content_type = value
        if length is None and not chunked:  # no body
            await self.app(scope, receive, send)
            return
        limit = self.limits.body_limit(scope["path"])
        if length is not None:
            if not length.isdigit():
                await _reject(ValidationError("Content-Length must be an integer"), send)
                return
            if int(length) > limit:
                await _reject(_too_large(limit), send)
                return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left: let the app see it
                await self.app(scope, _replaying(message, receive), send)
                return
            body += message.get("body", b"")
            if len(body) > limit:
                await _reject(_too_large(limit), send)
                return
            if not message.get("more_body", False):
                break
        if _is_json(content_type) and body:
            error = problem(body, self.limits.max_json_depth)
            if error is not None:
                await _reject(error, send)
                return
        whole: Message = {"type": "http.request", "body": bytes(body), "more_body": False}
        await self.app(scope, _replaying(whole, receive), send)


def _is_json(content_type: bytes | None) -> bool:
    """As FastAPI decides to parse a body as JSON (and, without a type, as it does when its
    ``strict_content_type`` is off)."""
    if content_type is None:
        return True
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (
        media.startswith(b"application/") and media.endswith(b"+json")
    )


def _replaying(first: Message, receive: Receive) -> Receive:
    pending: list[Message] = [first]

    async def replay() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replay


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the request body is larger than {limit} bytes", details={"max_body_bytes": limit}
    )


async def _reject(error: SteadypayError, send: Send) -> None:
    """Our error body. A 413 closes the connection: the rest of the body is never read."""
    body = render_error(error, request_id()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if isinstance(error, PayloadTooLarge):
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status_for(error), "headers": headers})
    await send({"type": "http.response.body", "body": body})
