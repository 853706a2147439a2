"""The request id of the work in progress, shared by every layer of every service.

The API's middleware sets it from the caller's ``X-Request-Id`` (or makes one); the resilient
client sends it on every call to another service, whose middleware adopts it; structlog binds
it to every log line. It lives here, outside ``api``, because the resilience layer reads it.
"""

from __future__ import annotations

from contextvars import ContextVar

REQUEST_ID_HEADER = "X-Request-Id"

request_id_var: ContextVar[str] = ContextVar("request_id", default="")


def current_request_id() -> str | None:
    """The request id of the current task, or None outside a request."""
    return request_id_var.get() or None
