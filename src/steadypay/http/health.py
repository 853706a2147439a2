"""``/health/live``, ``/health/ready`` (IETF health+json) and ``/metrics``, for every service.

Each service's composition root puts its :class:`~steadypay.observability.health.Readiness`
on ``app.state.readiness`` in its lifespan; these routes answer from it. ``/metrics`` is
guarded (:func:`guard_metrics`): the scrape token when ``STEADYPAY_METRICS_TOKEN`` is set,
loopback clients only when it is not.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials
from starlette.responses import Response

from steadypay.config import ServiceAuthSettings
from steadypay.http.responses import json_response
from steadypay.http.service_auth import metrics_bearer, metrics_refusal
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

_EXAMPLE = {"error": {"code": "...", "message": "..."}}
_ERROR = {"content": {"application/json": {"example": _EXAMPLE}}}


def guard_metrics(app: FastAPI, settings: ServiceAuthSettings) -> None:
    """Give ``app``'s ``/metrics`` the configured scrape token (None: loopback clients only,
    which is also what an app never given one answers)."""
    token = settings.metrics_token
    app.state.metrics_token = token.get_secret_value() if token is not None else None


@metrics_router.get(
    "/metrics",
    summary="Prometheus metrics (summed over this service's workers); database-derived gauges "
    "are read first, within STEADYPAY_HEALTH_CHECK_TIMEOUT_S. With STEADYPAY_METRICS_TOKEN "
    "set it needs that bearer token; without, it answers loopback clients only",
    responses={
        401: {"description": "unauthenticated: the metrics token is missing or wrong"} | _ERROR,
        403: {"description": "forbidden: not a loopback client, and no token configured"} | _ERROR,
    },
)
async def metrics(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(metrics_bearer)],
) -> Response:
    token: str | None = getattr(request.app.state, "metrics_token", None)
    client = request.client.host if request.client is not None else None
    refusal = metrics_refusal(client, request.headers.get("authorization"), token)
    if refusal is not None:
        raise refusal
    await readiness_of(request).scrape()
    body, content_type = render()
    return Response(body, media_type=content_type)
