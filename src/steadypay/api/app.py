"""The ASGI application factory.

``create_app(settings)`` is used by tests and by ``steadypay up`` (through :func:`app_from_env`,
which uvicorn calls in each worker process). The container is built in the lifespan, inside the
worker's event loop, never at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from steadypay import __version__, bootstrap
from steadypay.api.context import RequestIdMiddleware, request_id
from steadypay.api.responses import error_response, json_response
from steadypay.api.routes import (
    batch,
    chaos,
    health,
    money,
    monitor,
    outbox,
    slo,
    users,
    wallets,
    webhooks,
)
from steadypay.chaos import runtime as chaos_runtime
from steadypay.chaos.middleware import ChaosMiddleware
from steadypay.config import Settings
from steadypay.errors import (
    AuthenticationError,
    NotFound,
    PermissionDenied,
    SteadypayError,
    ValidationError,
)
from steadypay.idempotency.service import purge_forever
from steadypay.ledger.jobs import expire_holds_forever
from steadypay.observability.cloudwatch import cloudwatch_export
from steadypay.observability.metrics import MetricsMiddleware
from steadypay.observability.sli import sli_rollups

log = structlog.get_logger(__name__)

DESCRIPTION = """\
A double-entry payment ledger on PostgreSQL. Amounts are decimal strings in major units.
Money-moving POSTs need an `Idempotency-Key` header. Authenticate with `Authorization: Bearer
<key>`. Errors: `{"error": {"code", "message", "param", "request_id"}}`.
"""


def create_app(settings: Settings, container: bootstrap.Container | None = None) -> FastAPI:
    """The app. Pass ``container`` to share one built elsewhere (tests); else it is built here."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = container is None
        app.state.container = container or await bootstrap.build(settings)
        built: bootstrap.Container = app.state.container
        jobs = [
            asyncio.create_task(purge_forever(built.db, settings.idempotency_purge_interval_s)),
            asyncio.create_task(
                expire_holds_forever(built.ledger, settings.hold_expiry_interval_s)
            ),
        ]
        try:
            async with (
                cloudwatch_export(settings, app.state.request_observers),
                sli_rollups(settings, built.db, app.state.request_observers) as app.state.sli,
                chaos_runtime.following(built.db, settings),
            ):
                bootstrap.freeze_startup_objects()
                yield
        finally:
            for job in jobs:
                job.cancel()
            for job in jobs:
                with contextlib.suppress(asyncio.CancelledError):
                    await job
            if owned:
                await app.state.container.close()

    app = FastAPI(
        title="steadypay",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.request_observers = []
    app.add_middleware(ChaosMiddleware)  # innermost: injected faults are measured like real ones
    app.add_middleware(MetricsMiddleware, service="api", observers=app.state.request_observers)
    app.add_middleware(RequestIdMiddleware)
    install_error_handlers(app)
    routers = (
        health.router, health.metrics_router, users.router, wallets.router, money.router,
        webhooks.router, outbox.router, slo.router, monitor.router, chaos.router, batch.router,
    )  # fmt: skip
    for router in routers:
        app.include_router(router)
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
    return app


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, corrected to what the API really answers: invalid input is a 400
    with our error body (not FastAPI's 422), and every route but health needs a bearer key."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}}
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            default_422 = responses.get("422", {})
            if "HTTPValidationError" in json.dumps(default_422):
                del responses["422"]
            responses.setdefault("400", {"description": "validation_error"} | error)
            if not path.startswith("/health"):
                responses.setdefault("401", {"description": "unauthenticated"} | error)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    app.openapi_schema = schema
    return schema


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(SteadypayError)
    async def _ours(_: Request, exc: SteadypayError) -> Response:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> Response:
        return error_response(validation_error_from(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        error: SteadypayError
        if exc.status_code == 404:
            error = NotFound("no such route")
        elif exc.status_code == 401:
            error = AuthenticationError()
        elif exc.status_code == 403:
            error = PermissionDenied()
        else:
            return json_response(
                {
                    "error": {
                        "code": "http_error",
                        "message": str(exc.detail),
                        "param": None,
                        "request_id": request_id(),
                    }
                },
                exc.status_code,
                headers=dict(exc.headers or {}),
            )
        return error_response(error)


def validation_error_from(exc: RequestValidationError) -> ValidationError:
    """The first problem of a pydantic validation failure, as our 400 error."""
    problems = exc.errors()
    if not problems:
        return ValidationError()
    first = problems[0]
    location = [
        str(part)
        for part in first.get("loc", ())
        if part not in ("body", "query", "path", "header")
    ]
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    if first.get("type") == "json_invalid":
        return ValidationError("the request body is not valid JSON")
    if first.get("type") == "string_type" and location and location[-1] == "amount":
        message = 'amount must be a string such as "12.34" (JSON numbers lose cents)'
    if first.get("type") == "missing" and not location:
        message = "a JSON object body is required"
    param = ".".join(location) or None
    return ValidationError(message, param=param)


def app_from_env() -> FastAPI:
    """uvicorn factory for worker processes: settings come from STEADYPAY_* variables."""
    settings = Settings()
    bootstrap.configure_logging(settings, "api")
    return create_app(settings)
