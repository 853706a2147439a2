"""The fraud service's ASGI app: ``POST /check-fraud`` and health, in its own process.

``create_fraud_app(settings)`` builds nothing at import or construction time: its lifespan
opens its own PostgreSQL pool (and, with ``STEADYPAY_REDIS_URL``, a Redis client with short
timeouts) inside the server's event loop, and closes them at shutdown.

Errors use the main API's body, ``{"error": {"code", "message", "param", "request_id"}}``:
400 ``validation_error``, 422 ``idempotency_key_reuse`` (a transfer_id repeated with other
details), 503 when PostgreSQL is needed and down, 504 ``deadline_exceeded`` when the caller's
``X-Deadline-Ms`` is spent.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated
from uuid import UUID

import structlog
from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import Response
from redis.asyncio import Redis

from steadypay import __version__
from steadypay.api.app import install_error_handlers
from steadypay.api.context import RequestIdMiddleware
from steadypay.api.responses import json_response
from steadypay.api.routes.health import (
    READY_SUMMARY,
    health_response,
    metrics_router,
    readiness_of,
)
from steadypay.bootstrap import freeze_startup_objects, pool_options
from steadypay.chaos import runtime as chaos_runtime
from steadypay.chaos.middleware import ChaosMiddleware
from steadypay.config import Settings
from steadypay.db.pool import Database, create_database
from steadypay.errors import ServiceUnavailable, ValidationError
from steadypay.fraud.deadline import (
    DeadlineMiddleware,
    current_deadline,
    deadline_exceeded_response,
)
from steadypay.fraud.domain import WallClock, utc_now
from steadypay.fraud.health import fraud_readiness
from steadypay.fraud.repository import purge_forever
from steadypay.fraud.rules import FraudRules
from steadypay.fraud.schemas import CheckFraudIn, VerdictOut
from steadypay.fraud.service import FraudService, build_store, retention
from steadypay.observability.cloudwatch import cloudwatch_export
from steadypay.observability.metrics import MetricsMiddleware
from steadypay.observability.sli import sli_rollups

log = structlog.get_logger(__name__)

JSON = "application/json"
DEFAULT_CHECK_TIMEOUT_S = 5.0
"""The longest a check may take when the caller sends no deadline."""
PURGE_INTERVAL_S = 300.0
APPLICATION_NAME = "steadypay-fraud"

DESCRIPTION = """\
Scores a transfer before the ledger moves money: `POST /check-fraud` answers
`{"risk_score": 0..100, "reasons": [...], "model_version": "..."}`. A check is idempotent by
`transfer_id` (send it as `Idempotency-Key` too): a repeat returns the same verdict and is not
counted again. `X-Deadline-Ms` bounds the work; an exhausted budget gets `504`.
"""


@dataclasses.dataclass(slots=True)
class FraudRuntime:
    db: Database
    redis: Redis | None
    service: FraudService


def rules_from(settings: Settings) -> FraudRules:
    """The configured rules (``STEADYPAY_FRAUD_RULES``, JSON; defaults otherwise)."""
    return settings.fraud_rules


def create_fraud_app(
    settings: Settings,
    rules: FraudRules | None = None,
    *,
    clock: WallClock = utc_now,
    check_timeout_s: float = DEFAULT_CHECK_TIMEOUT_S,
) -> FastAPI:
    """The fraud service. ``rules`` defaults to the configured (or default) rules; ``clock``
    is the wall clock that timestamps checks (tests move it)."""
    chosen = rules if rules is not None else rules_from(settings)
    idempotency_ttl = timedelta(hours=settings.idempotency_ttl_hours)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        options = dataclasses.replace(pool_options(settings), application_name=APPLICATION_NAME)
        db = await create_database(settings.require_database_url(), options)
        redis: Redis | None = None
        try:
            await require_schema(db)
            if settings.redis_url is not None:
                from steadypay.resilience.redis_store import redis_client

                redis = redis_client(
                    settings.redis_url.get_secret_value(),
                    timeout_s=settings.redis_timeout_ms / 1000,
                )
            store = build_store(
                db,
                redis,
                chosen,
                idempotency_ttl=idempotency_ttl,
                redis_timeout_s=settings.redis_timeout_ms / 1000,
                cooldown_s=settings.breaker_store_cooldown_s,
            )
            app.state.fraud = FraudRuntime(db, redis, FraudService(store, chosen, clock))
            app.state.readiness = fraud_readiness(settings, db, redis, app.state.fraud.service)
            purger = asyncio.create_task(
                purge_forever(db, retention(chosen, idempotency_ttl), PURGE_INTERVAL_S, clock)
            )
            try:
                async with (
                    cloudwatch_export(settings, app.state.request_observers),
                    sli_rollups(settings, db, app.state.request_observers) as app.state.sli,
                    chaos_runtime.following(db, settings),
                ):
                    freeze_startup_objects()
                    yield
            finally:
                purger.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await purger
        finally:
            if redis is not None:
                await redis.aclose()
            await db.close()

    app = FastAPI(
        title="steadypay fraud service",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.add_middleware(DeadlineMiddleware)
    app.state.request_observers = []
    app.add_middleware(ChaosMiddleware)
    app.add_middleware(MetricsMiddleware, service="fraud", observers=app.state.request_observers)
    app.add_middleware(RequestIdMiddleware)  # outermost: error bodies carry the request id
    install_error_handlers(app)
    add_routes(app, check_timeout_s)
    app.include_router(metrics_router)
    return app


async def require_schema(db: Database) -> None:
    async with db.connection() as conn:
        if await conn.fetchval("SELECT to_regclass('fraud.checks')") is None:
            raise RuntimeError(
                "the fraud schema is missing: run `steadypay migrate` (migration 0003) first"
            )


async def _runtime(request: Request) -> FraudRuntime:
    runtime: FraudRuntime = request.app.state.fraud
    return runtime


RuntimeDep = Annotated[FraudRuntime, Depends(_runtime)]

_ERROR = {"content": {JSON: {"example": {"error": {"code": "...", "message": "..."}}}}}


def add_routes(app: FastAPI, check_timeout_s: float) -> None:
    @app.post(
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

    @app.get("/health/live", tags=["health"], summary="The process is up")
    async def live() -> Response:
        return json_response({"status": "ok"})

    @app.get("/health/ready", tags=["health"], summary=READY_SUMMARY)
    async def ready(request: Request) -> Response:
        return health_response(await readiness_of(request).report())


def _same_uuid(text: str, expected: UUID) -> bool:
    try:
        return UUID(text) == expected
    except ValueError:
        return False
