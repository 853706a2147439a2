"""The payment API's ASGI app, assembled from its routers on the shared HTTP toolkit.

:func:`api_app` builds nothing long-lived: the composition root
(:func:`steadypay.bootstrap.api.create_app`) hands it a lifespan that builds the container in
the worker's event loop and the process's fault injector for the HTTP hook.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.middleware import Middleware

from steadypay.api.routes import (
    batch,
    chaos,
    money,
    monitor,
    operators,
    outbox,
    slo,
    users,
    wallets,
    webhooks,
)
from steadypay.faults import ChaosMiddleware, FaultInjector
from steadypay.http import service_app
from steadypay.http.app import Lifespan
from steadypay.http.limits import InputLimits
from steadypay.http.ratelimit import RefuseBlockedAddresses

DESCRIPTION = """\
A double-entry payment ledger on PostgreSQL. Amounts are decimal strings in major units.
Money-moving POSTs need an `Idempotency-Key` header. Authenticate with `Authorization: Bearer
<key>`. Errors: `{"error": {"code", "message", "param", "request_id"}}`.
"""


def api_app(
    lifespan: Lifespan, faults: FaultInjector, limits: InputLimits | None = None
) -> FastAPI:
    """The payment API: the shared stack, the fault injector's HTTP hook innermost (injected
    faults are measured like real ones), and every router. The batch router's routes get the
    larger body limit of ``limits``."""
    batch_paths = frozenset(r.path for r in batch.router.routes if isinstance(r, APIRoute))
    app = service_app(
        title="steadypay",
        description=DESCRIPTION,
        service="api",
        lifespan=lifespan,
        # the last is the outermost: a blocked address is refused before the fault injector
        middleware=[
            Middleware(ChaosMiddleware, injector=faults),
            Middleware(RefuseBlockedAddresses),
        ],
        limits=replace(limits or InputLimits(), batch_paths=batch_paths),
    )
    routers = (
        users.router, wallets.router, money.router, webhooks.router, outbox.router,
        slo.router, monitor.router, chaos.router, batch.router, operators.router,
    )  # fmt: skip
    for router in routers:
        app.include_router(router)
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
    return app


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, corrected to what the API really answers: invalid input is a 400
    with our error body (not FastAPI's 422), a body may be too large (413), and every route
    but health needs a bearer key (401) and is rate limited (429)."""
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
            if "requestBody" in operation:
                responses.setdefault("413", {"description": "payload_too_large"} | error)
            if not path.startswith("/health"):
                responses.setdefault("401", {"description": "unauthenticated"} | error)
                responses.setdefault("429", {"description": "rate_limited"} | error)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    app.openapi_schema = schema
    return schema
