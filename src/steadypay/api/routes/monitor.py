"""/v1/admin/health: the health monitor's record (admin only).

``GET /v1/admin/health/history`` — the current state, recent failovers, and rounds newest
first (cursor pagination like /v1/admin/outbox); ``POST /v1/admin/health/failovers/{id}/ack``
— an operator acknowledges a failover, which lets the monitor trigger the next one before the
cool-down ends.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from steadypay.api.deps import AdminDep, ContainerDep
from steadypay.api.responses import json_response
from steadypay.api.schemas import ErrorOut
from steadypay.errors import NotFound
from steadypay.monitor import repository as repo

router = APIRouter(prefix="/v1/admin/health", tags=["admin"])
MAX_ID = 2**63 - 1
RECENT_FAILOVERS = 10


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
    cooldown_s = c.settings.monitor_failover_cooldown_s
    rounds, has_more = await repo.rounds_page(c.db, limit=limit, starting_after=starting_after)
    latest = rounds[0] if rounds and starting_after is None else await repo.latest_round(c.db)
    leader = await repo.latest_round(c.db, "leader")
    blocking = await repo.blocking_failover(c.db, cooldown_s)
    failovers = await repo.recent_failovers(c.db, RECENT_FAILOVERS)
    if latest is None:
        status = "no_data"
    else:
        status = "healthy" if (leader or latest).consecutive_failures == 0 else "failing"
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
            "failovers": [f.to_json(cooldown_s) for f in failovers],
            "data": [r.to_json() for r in rounds],
            "has_more": has_more,
        }
    )


@router.post(
    "/failovers/{failover_id}/ack",
    responses={404: {"model": ErrorOut, "description": "not_found"}},
    summary="Acknowledge a failover (admin; idempotent): the monitor may trigger another one "
    "without waiting for the cool-down",
)
async def acknowledge(
    c: ContainerDep, who: AdminDep, failover_id: Annotated[int, Path(ge=1, le=MAX_ID)]
) -> Response:
    failover = await repo.acknowledge_failover(c.db, failover_id, who.scope)
    if failover is None:
        raise NotFound("no such failover", param="failover_id")
    return json_response(failover.to_json(c.settings.monitor_failover_cooldown_s))
