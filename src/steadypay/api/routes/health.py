"""/health/live and /health/ready"""

from __future__ import annotations

import contextlib
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from steadypay.api.deps import ContainerDep
from steadypay.api.responses import json_response
from steadypay.errors import ServiceUnavailable
from steadypay.observability.metrics import render
from steadypay.outbox import outbox_backlog

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live", summary="The process is up")
async def live() -> Response:
    return json_response({"status": "ok"})


@router.get(
    "/ready",
    summary="Ready to serve: 200 when the database answers and no critical dependency's "
    "circuit is open, else 503. Non-critical dependencies with an open circuit report warn.",
)
async def ready(c: ContainerDep) -> Response:
    database_ok = await c.db.ping(timeout_s=1.0)
    dependencies_ok, dependencies = await c.dependencies.health()
    ok = database_ok and dependencies_ok
    backlog: dict[str, Any] | None = None
    if database_ok:
        with contextlib.suppress(ServiceUnavailable):
            backlog = await outbox_backlog(c.db)
    body = {
        "status": "ok" if ok else "unavailable",
        "checks": {"database": "ok" if database_ok else "unavailable"},
        "dependencies": dependencies,
        "outbox": backlog,
    }
    return json_response(body, 200 if ok else 503, headers=None if ok else {"Retry-After": "1"})


metrics_router = APIRouter(tags=["health"])


@metrics_router.get("/metrics", summary="Prometheus metrics (summed over this service's workers)")
async def metrics() -> Response:
    body, content_type = render()
    return Response(body, media_type=content_type)
