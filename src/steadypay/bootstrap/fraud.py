"""The fraud service's composition root: its pool, Redis, velocity store, rules and app.

``create_fraud_app(settings)`` builds nothing at import or construction time: its lifespan
opens its own PostgreSQL pool (and, with ``STEADYPAY_REDIS_URL``, a Redis client with short
timeouts) inside the server's event loop, and closes them at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

from fastapi import FastAPI
from redis.asyncio import Redis
from starlette.middleware import Middleware

from steadypay.bootstrap.common import open_router, redis_for, serving
from steadypay.config import Settings
from steadypay.faults import ChaosMiddleware, FaultInjector
from steadypay.fraud.domain import WallClock, utc_now
from steadypay.fraud.health import fraud_readiness
from steadypay.fraud.repository import purge_forever, require_schema
from steadypay.fraud.routes import DEFAULT_CHECK_TIMEOUT_S, FraudRuntime, fraud_router
from steadypay.fraud.rules import FraudRules
from steadypay.fraud.service import FraudService, build_store, retention
from steadypay.http import service_app
from steadypay.http.health import guard_metrics
from steadypay.http.limits import InputLimits
from steadypay.http.service_auth import ServiceKeys

PURGE_INTERVAL_S = 300.0
APPLICATION_NAME = "steadypay-fraud"

DESCRIPTION = """\
Scores a transfer before the ledger moves money: `POST /check-fraud` answers
`{"risk_score": 0..100, "reasons": [...], "model_version": "..."}`. A check is idempotent by
`transfer_id` (send it as `Idempotency-Key` too): a repeat returns the same verdict and is not
counted again. `X-Deadline-Ms` bounds the work; an exhausted budget gets `504`.

Only steadypay's own processes may call it: every route but health needs an internal service
key (`STEADYPAY_INTERNAL_KEYS`) as `Authorization: Bearer <key>`, else `401`.
"""


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
    is the wall clock that timestamps checks (tests move it). Refuses to build without an
    internal service key (``STEADYPAY_INTERNAL_KEYS``, or outside production
    ``STEADYPAY_ADMIN_KEY`` to derive one from)."""
    keys = ServiceKeys(settings.accepted_internal_keys())
    chosen = rules if rules is not None else rules_from(settings)
    idempotency_ttl = timedelta(hours=settings.idempotency_ttl_hours)

    faults = FaultInjector()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = await open_router(settings, APPLICATION_NAME, faults=faults)
        redis: Redis | None = None
        try:
            await require_schema(db)
            redis = redis_for(settings)
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
                async with serving(settings, db, app, faults):
                    yield
            finally:
                purger.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await purger
        finally:
            if redis is not None:
                await redis.aclose()
            await db.close()

    app = service_app(
        title="steadypay fraud service",
        description=DESCRIPTION,
        service="fraud",
        lifespan=lifespan,
        limits=InputLimits.of(settings),
        middleware=[Middleware(ChaosMiddleware, injector=faults)],
    )
    app.state.internal_keys = keys
    guard_metrics(app, settings)
    app.include_router(fraud_router(check_timeout_s))
    return app
