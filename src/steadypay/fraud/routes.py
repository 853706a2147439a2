"""The fraud service's routes: ``POST /check-fraud`` (health comes from the HTTP toolkit).

Every route here needs an internal service key as bearer (``STEADYPAY_INTERNAL_KEYS``,
:mod:`steadypay.http.service_auth`): a score changes how the sender's next payments are
judged, so only steadypay's own processes may ask for one.

Its composition root (:mod:`steadypay.bootstrap.fraud`) opens the pool and Redis in the
lifespan and puts a :class:`FraudRuntime` on ``app.state.fraud``.

Errors use the main API's body, ``{"error": {"code", "message", "param", "request_id"}}``:
400 ``validation_error``, 401 ``unauthenticated`` (no valid internal key), 422
``idempotency_key_reuse`` (a transfer_id repeated with other details), 503 when PostgreSQL is
needed and down, 504 ``deadline_exceeded`` when the caller's ``X-Deadline-Ms`` is spent.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Annotated
from uuid import UUID

import structlog
from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import Response
from redis.asyncio import Redis

from steadypay.db.router import DatabaseRouter
from steadypay.errors import ServiceUnavailable, ValidationError
from steadypay.fraud.schemas import CheckFraudIn, VerdictOut
from steadypay.fraud.service import FraudService
from steadypay.http.deadline import current_deadline, deadline_exceeded_response
from steadypay.http.responses import json_response
from steadypay.http.service_auth import INTERNAL, UNAUTHENTICATED

log = structlog.get_logger(__name__)

JSON = "application/json"
DEFAULT_CHECK_TIMEOUT_S = 5.0
"""The longest a check may take when the caller sends no deadline."""


@dataclasses.dataclass(slots=True)
class FraudRuntime:
    db: DatabaseRouter
    redis: Redis | None
    service: FraudService


async def _runtime(request: Request) -> FraudRuntime:
    runtime: FraudRuntime = request.app.state.fraud
    return runtime


RuntimeDep = Annotated[FraudRuntime, Depends(_runtime)]

_ERROR = {"content": {JSON: {"example": {"error": {"code": "...", "message": "..."}}}}}


def fraud_router(check_timeout_s: float = DEFAULT_CHECK_TIMEOUT_S) -> APIRouter:
    """``POST /check-fraud``, each check bounded by ``check_timeout_s`` (or the caller's
    ``X-Deadline-Ms`` when it is sooner); every route needs an internal service key."""
    router = APIRouter(dependencies=INTERNAL, responses=UNAUTHENTICATED)

    @router.post(
        "/check-fraud",
        tags=["fraud"],
        summary="Score a transfer (idempotent by transfer_id)",
        responses={
            200: {"model": VerdictOut, "description": "The verdict (a repeat: the same one)"},
            400: {"description": "validation_error"} | _ERROR,
            422: {"description": "idempotency_key_reuse"} | _ERROR,
            503: {"description": "database_unavailable"} | _ERROR,
            504: {"description": "deadline_exceeded"} | _ERROR,
        },
    )
    async def check_fraud(
        body: CheckFraudIn,
        runtime: RuntimeDep,
        idempotency_key: Annotated[
            str | None,
            Header(alias="Idempotency-Key", description="The transfer_id, if sent"),
        ] = None,
    ) -> Response:
        if idempotency_key is not None and not _same_uuid(idempotency_key, body.transfer_id):
            raise ValidationError(
                "Idempotency-Key must equal the transfer_id", param="Idempotency-Key"
            )
        deadline = current_deadline()
        budget_s = check_timeout_s
        caller_bound = deadline is not None and deadline.remaining() <= check_timeout_s
        if deadline is not None and caller_bound:
            budget_s = deadline.remaining()
        timeout = asyncio.timeout(budget_s)
        try:
            async with timeout:
                recorded = await runtime.service.check(body.to_check())
        except TimeoutError:
            if not timeout.expired():
                raise
            log.warning(
                "fraud_check_timed_out",
                transfer_id=str(body.transfer_id),
                budget_ms=round(budget_s * 1000),
                caller_deadline=caller_bound,
            )
            if caller_bound:
                return deadline_exceeded_response()
            raise ServiceUnavailable("the fraud check took too long; retry") from None
        headers: dict[str, str] = {"X-Velocity-Store": recorded.store}
        if recorded.replayed:
            headers["Idempotent-Replayed"] = "true"
        return json_response(recorded.verdict.to_json(), 200, headers)

    return router


def _same_uuid(text: str, expected: UUID) -> bool:
    try:
        return UUID(text) == expected
    except ValueError:
        return False
