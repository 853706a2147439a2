"""/v1/admin/slo: availability, latency SLI, error budget and burn rates (admin only)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from steadypay.api.deps import AdminDep, ContainerDep
from steadypay.http.responses import json_response
from steadypay.observability.sli import SliRollups

router = APIRouter(prefix="/v1/admin/slo", tags=["admin"])


@router.get(
    "",
    summary="Availability, latency SLI, error budget and multiwindow burn rates of a service "
    "over the last hour, day or 30 days (admin). No request in a window reads no_data.",
)
async def get_slo(
    request: Request,
    c: ContainerDep,
    _: AdminDep,
    window: Annotated[Literal["1h", "1d", "30d"], Query()] = "1h",
    service: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=50,
            pattern=r"^[A-Za-z0-9._-]+$",
            description="api, fraud or notifications (with STEADYPAY_SLI_SERVICE_PREFIX "
            "before it, if set). Default: this API.",
        ),
    ] = None,
) -> Response:
    settings = c.settings
    name = service or settings.sli_service_prefix + "api"
    # This worker's pending minute is written first; other workers' lag by at most
    # STEADYPAY_SLI_FLUSH_INTERVAL_S.
    rollups: SliRollups | None = getattr(request.app.state, "sli", None)
    if rollups is not None:
        await rollups.flush()
    report = await c.slo.report(window, name)
    return json_response(report)
