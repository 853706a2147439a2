"""/v1/admin/health: the health monitor's record (admin only).

``GET /v1/admin/health/history`` — the current state, recent failovers, and rounds newest
first (cursor pagination like /v1/admin/outbox); ``POST /v1/admin/health/failovers/{id}/ack``
— an operator acknowledges a failover, which lets the monitor trigger the next one before the
cool-down ends.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from steadypay.api.deps import AdminDep, ContainerDep, audit_entry
from steadypay.api.schemas import ErrorOut
from steadypay.http.responses import json_response
from steadypay.identity.audit import FAILOVER_ACK
from steadypay.monitor import repository as repo

router = APIRouter(prefix="/v1/admin/health", tags=["admin"])
MAX_ID = 2**63 - 1


def _summary(record: repo.RoundRecord | None) -> dict[str, Any] | None:
    if record is None:
        return None
    return {
        "round_id": str(record.id),
        "monitor_id": record.monitor_id,
        "role": record.role,
        "at": record.finished_at.isoformat(),
        "healthy": record.healthy,
        "decision": record.decision,
        "consecutive_failures": record.consecutive_failures,
    }


@router.get(
    "/history",
    summary="The health monitor's rounds, newest first, with the current state and recent "
    "failovers (admin)",
)
async def history(
    c: ContainerDep,
    _: AdminDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    starting_after: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="A round id (cursor)")
    ] = None,
) -> Response:
    history = c.monitor_history
    cooldown_s = history.cooldown_s
    page = await history.page(limit=limit, starting_after=starting_after)
    latest, leader, blocking = page.latest, page.leader, page.blocking
    status = page.status
    state = {
        "status": status,
        "latest_round": _summary(latest),
        "leader": _summary(leader),
        "failover_blocked_by": None if blocking is None else str(blocking.id),
        "cooldown_s": cooldown_s,
    }
    return json_response(
        {
            "state": state,
            "failovers": [f.to_json(cooldown_s) for f in page.failovers],
            "data": [r.to_json() for r in page.rounds],
            "has_more": page.has_more,
        }
    )


@router.post(
    "/failovers/{failover_id}/ack",
    responses={404: {"model": ErrorOut, "description": "not_found"}},
    summary="Acknowledge a failover (admin; idempotent): the monitor may trigger another one "
    "without waiting for the cool-down",
)
async def acknowledge(
    request: Request,
    c: ContainerDep,
    who: AdminDep,
    failover_id: Annotated[int, Path(ge=1, le=MAX_ID)],
) -> Response:
    failover = await c.monitor_history.acknowledge(failover_id, who.actor)
    await c.identity.audit.record(
        audit_entry(request, who, FAILOVER_ACK, f"failover:{failover_id}")
    )
    return json_response(failover.to_json(c.monitor_history.cooldown_s))
