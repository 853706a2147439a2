"""/health/live and /health/ready"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from steadypay.api.deps import ContainerDep
from steadypay.api.responses import json_response

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live", summary="The process is up")
async def live() -> Response:
    return json_response({"status": "ok"})


@router.get("/ready", summary="Ready to serve: the database answers (200), else 503")
async def ready(c: ContainerDep) -> Response:
    if await c.db.ping(timeout_s=1.0):
        return json_response({"status": "ok", "checks": {"database": "ok"}})
    return json_response(
        {"status": "unavailable", "checks": {"database": "unavailable"}},
        503,
        headers={"Retry-After": "1"},
    )
