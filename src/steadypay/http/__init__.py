"""The web toolkit every steadypay service is built with (the payment API, the fraud service,
the notification service): one error body and status map, the request id, the deadline header
on the receiving side, health and metrics routes, and the app and lifespan they share. Owned by
none of them; it knows no context."""

from steadypay.http.app import observed, service_app
from steadypay.http.context import RequestIdMiddleware, request_id
from steadypay.http.deadline import DeadlineMiddleware, current_deadline
from steadypay.http.errors import headers_for, render_error, status_for
from steadypay.http.handlers import install_error_handlers, validation_error_from
from steadypay.http.health import READY_SUMMARY, health_response, readiness_of
from steadypay.http.responses import JSON, error_response, json_response

__all__ = [
    "JSON",
    "READY_SUMMARY",
    "DeadlineMiddleware",
    "RequestIdMiddleware",
    "current_deadline",
    "error_response",
    "headers_for",
    "health_response",
    "install_error_handlers",
    "json_response",
    "observed",
    "readiness_of",
    "render_error",
    "request_id",
    "service_app",
    "status_for",
    "validation_error_from",
]
