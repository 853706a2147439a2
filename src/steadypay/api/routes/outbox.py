"""/v1/admin/outbox: the operator's view of the transactional outbox (admin only)."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from steadypay.api.deps import AdminDep, ContainerDep, audit_entry
from steadypay.api.schemas import ErrorOut
from steadypay.http.responses import json_response
from steadypay.identity.audit import OUTBOX_REDELIVER
from steadypay.outbox.domain import OutboxStatus, event_json

router = APIRouter(prefix="/v1/admin/outbox", tags=["admin"])


@router.get(
    "",
    summary="Outbox events by status, oldest first (admin): what is waiting, what was given up",
)
async def list_outbox(
    c: ContainerDep,
    _: AdminDep,
    status: Annotated[Literal["pending", "dead", "delivered"], Query()] = "dead",
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    starting_after: Annotated[UUID | None, Query(description="An event id (cursor)")] = None,
) -> Response:
    events, has_more = await c.outbox.list_events(
        OutboxStatus(status), limit=limit, starting_after=starting_after
    )
    return json_response({"data": [event_json(e) for e in events], "has_more": has_more})


@router.post(
    "/{event_id}/redeliver",
    responses={
        404: {"model": ErrorOut, "description": "not_found"},
        409: {"model": ErrorOut, "description": "conflict (already delivered)"},
    },
    summary="Put a dead (or pending) event back in line, due now (admin). An event older than "
    "the relay's max age gets one more attempt.",
)
async def redeliver(request: Request, event_id: UUID, c: ContainerDep, who: AdminDep) -> Response:
    audit = audit_entry(request, who, OUTBOX_REDELIVER, f"event:{event_id}")
    return json_response(event_json(await c.outbox.redeliver(event_id, audit)))
