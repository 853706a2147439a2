"""/v1/admin/chaos: turn fault injection on for a while, see what is in force (admin only)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from steadypay.api.deps import AdminDep, ContainerDep, audit_entry
from steadypay.api.schemas import ErrorOut
from steadypay.faults import runtime
from steadypay.faults.injector import ChaosConfig, FaultRule
from steadypay.http.responses import json_response
from steadypay.identity.audit import CHAOS_SET

router = APIRouter(prefix="/v1/admin/chaos", tags=["admin"])


class PutChaos(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool
    rules: tuple[FaultRule, ...] = Field(default=(), max_length=50)
    seed: int | None = None
    duration_s: Annotated[float, Field(gt=0, le=runtime.MAX_DURATION.total_seconds())] = Field(
        default=300.0,
        description="After this long the faults switch themselves off (at most 24 h).",
    )


def _view(config: ChaosConfig, source: str, allowed: bool) -> dict[str, object]:
    return {
        "source": source,
        "allowed": allowed,
        "active": config.active(datetime.now(UTC)),
        "config": config.model_dump(mode="json"),
    }


@router.get("", summary="The fault injection in force (admin)")
async def get_chaos(c: ContainerDep, _: AdminDep) -> Response:
    config, source = await c.chaos.current()
    return json_response(_view(config, source, c.chaos.allowed))


@router.put(
    "",
    responses={403: {"model": ErrorOut, "description": "chaos_forbidden (production)"}},
    summary="Set the faults every service injects, until duration_s has passed (admin). "
    '`{"enabled": false}` switches them off.',
)
async def put_chaos(request: Request, body: PutChaos, c: ContainerDep, who: AdminDep) -> Response:
    config = await c.chaos.set(
        enabled=body.enabled,
        rules=body.rules,
        seed=body.seed,
        duration_s=body.duration_s,
        who=who.actor,
    )
    entry = audit_entry(request, who, CHAOS_SET, "chaos")
    details = {"enabled": body.enabled, "duration_s": body.duration_s, "rules": len(body.rules)}
    await c.identity.audit.record(replace(entry, details=details))
    return json_response(_view(config, "runtime", c.chaos.allowed))
