"""/v1/admin/chaos: turn fault injection on for a while, see what is in force (admin only)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from steadypay.api.deps import AdminDep, ContainerDep
from steadypay.api.responses import json_response
from steadypay.api.schemas import ErrorOut
from steadypay.chaos import runtime
from steadypay.chaos.faults import INJECTOR, ChaosConfig, FaultRule
from steadypay.errors import ChaosForbidden

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


def _view(config: ChaosConfig, source: str) -> dict[str, object]:
    return {
        "source": source,
        "allowed": INJECTOR.allowed,
        "active": config.active(datetime.now(UTC)),
        "config": config.model_dump(mode="json"),
    }


@router.get("", summary="The fault injection in force (admin)")
async def get_chaos(c: ContainerDep, _: AdminDep) -> Response:
    stored = await runtime.load(c.db)
    fallback = runtime.startup_config(c.settings)
    config = runtime.effective(stored, fallback)
    return json_response(_view(config, "runtime" if config is stored else "startup"))


@router.put(
    "",
    responses={403: {"model": ErrorOut, "description": "chaos_forbidden (production)"}},
    summary="Set the faults every service injects, until duration_s has passed (admin). "
    '`{"enabled": false}` switches them off.',
)
async def put_chaos(body: PutChaos, c: ContainerDep, _: AdminDep) -> Response:
    if body.enabled and not runtime.allowed(c.settings):
        raise ChaosForbidden()
    config = ChaosConfig(
        enabled=body.enabled,
        rules=body.rules,
        seed=body.seed,
        expires_at=datetime.now(UTC) + timedelta(seconds=body.duration_s),
    )
    if not body.enabled:
        INJECTOR.configure(config)  # off here first, so this worker's store is not failed
    await runtime.store(c.db, config, "admin")
    INJECTOR.configure(config)  # this worker at once; the others within a second
    return json_response(_view(config, "runtime"))
