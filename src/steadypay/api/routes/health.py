"""/health/live, /health/ready (IETF health+json) and /metrics, for every steadypay service.

The fraud and notification services mount ``metrics_router`` and answer ``/health/ready`` with
``health_response``; each sets ``app.state.readiness`` in its lifespan. The payment API builds
its :class:`Readiness` from the container on first use.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import Response

from steadypay.api.responses import json_response
from steadypay.bootstrap import Container
from steadypay.observability.health import (
    MEDIA_TYPE,
    BacklogLimits,
    HealthReport,
    Readiness,
    circuit_probes,
    outbox_probe,
    pool_probe,
    postgresql_probe,
    redis_probe,
    refresh_state_gauges,
)
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


def api_readiness(c: Container) -> Readiness:
    settings = c.settings
    timeout_s = settings.health_check_timeout_s
    limits = BacklogLimits(settings.health_backlog_warn, settings.health_backlog_age_warn_s)
    probes = [
        pool_probe(c.db),
        postgresql_probe(c.db, timeout_s),
        outbox_probe(c.db, limits, timeout_s),
        *circuit_probes(c.dependencies),
    ]
    if c.dependencies.redis is not None:
        probes.append(redis_probe(c.dependencies.redis, c.db.service, timeout_s))

    async def refresh() -> None:
        await refresh_state_gauges(c.db, timeout_s)

    return Readiness(
        "api",
        "steadypay payment API",
        probes,
        timeout_s=timeout_s,
        refreshers=[refresh],
    )


def readiness_of(request: Request) -> Readiness:
    state = request.app.state
    found: Readiness | None = getattr(state, "readiness", None)
    if found is None:  # the payment API: built from its container, once
        container: Container = state.container
        found = state.readiness = api_readiness(container)
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
