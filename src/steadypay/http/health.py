"""``/health/live``, ``/health/ready`` (IETF health+json) and ``/metrics``, for every service.

Each service's composition root puts its :class:`~steadypay.observability.health.Readiness`
on ``app.state.readiness`` in its lifespan; these routes answer from it.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from starlette.responses import Response

from steadypay.http.responses import json_response
from steadypay.observability.health import MEDIA_TYPE, HealthReport, Readiness
from steadypay.observability.metrics import render

router = APIRouter(prefix="/health", tags=["health"])

RETRY_AFTER_S = "1"
READY_SUMMARY = (
    "Ready to serve (application/health+json, draft-inadarei-api-health-check): 200 pass or "
    "warn, 503 fail (the database down, or a critical dependency's circuit open)."
)


def health_response(report: HealthReport) -> Response:
    status = report.http_status
    headers = {"Retry-After": RETRY_AFTER_S} if status == 503 else None
    body = json.dumps(report.to_json(), separators=(",", ":"))
    return Response(body, status, headers=headers, media_type=MEDIA_TYPE)


def readiness_of(request: Request) -> Readiness:
    found: Readiness = request.app.state.readiness
    return found


@router.get("/live", summary="The process is up (no dependency is checked)")
async def live() -> Response:
    return json_response({"status": "ok"})


@router.get("/ready", summary=READY_SUMMARY)
async def ready(request: Request) -> Response:
    return health_response(await readiness_of(request).report())


metrics_router = APIRouter(tags=["health"])


@metrics_router.get(
    "/metrics",
    summary="Prometheus metrics (summed over this service's workers); database-derived gauges "
    "are read first, within STEADYPAY_HEALTH_CHECK_TIMEOUT_S",
)
async def metrics(request: Request) -> Response:
    await readiness_of(request).scrape()
    body, content_type = render()
    return Response(body, media_type=content_type)
