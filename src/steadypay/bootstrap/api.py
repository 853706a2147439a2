"""The payment API's composition root: its container, its readiness, its app and its jobs.

``create_app(settings)`` is used by tests and by ``steadypay up`` (through
:func:`app_from_env`, which uvicorn calls in each worker process). The container is built in
the lifespan, inside the worker's event loop, never at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

from fastapi import FastAPI
from redis.asyncio import Redis

from steadypay.api.app import api_app
from steadypay.api.container import Container
from steadypay.bootstrap.common import (
    build_dependencies,
    configure_logging,
    open_router,
    serving,
)
from steadypay.config import Settings
from steadypay.faults import FaultInjector
from steadypay.faults.control import ChaosControl
from steadypay.http.health import guard_metrics
from steadypay.http.limits import InputLimits
from steadypay.http.ratelimit import RateLimits, RatePolicy, shared_storage
from steadypay.idempotency.service import purge_forever
from steadypay.identity.service import Identity
from steadypay.ledger.gauges import refresh_state_gauges
from steadypay.ledger.jobs import expire_holds_forever
from steadypay.ledger.service import Ledger, RetryPolicy
from steadypay.ledger.wallets import Wallets
from steadypay.monitor.history import MonitorHistory
from steadypay.observability.health import (
    BacklogLimits,
    Readiness,
    pool_probe,
    postgresql_probe,
    redis_probe,
    replica_probes,
)
from steadypay.observability.slo import SloReports
from steadypay.outbox.health import outbox_probe
from steadypay.outbox.service import OutboxAdmin
from steadypay.payments.risk import DailyTotals, RiskAssessor, RiskPolicy
from steadypay.payments.service import Payments
from steadypay.resilience.health import circuit_probes


async def build(settings: Settings, faults: FaultInjector | None = None) -> Container:
    """Every long-lived object of an API process. ``faults`` is the process's injector (a new
    one when not given); the pool and the dependency clients call it."""
    if settings.admin_key is None:
        raise RuntimeError(
            "no admin key: set STEADYPAY_ADMIN_KEY (`steadypay up` generates one for you)"
        )
    faults = faults or FaultInjector()
    db = await open_router(settings, faults=faults)
    wallets = Wallets(db)
    dependencies = build_dependencies(settings, faults=faults)
    risk = RiskAssessor(
        dependencies.clients.get("fraud"),
        DailyTotals(db, dependencies.redis),
        RiskPolicy(
            review_above_score=settings.risk_review_above_score,
            deadline_s=settings.risk_deadline_ms / 1000,
            fallback_amount_limit=settings.risk_fallback_amount_limit,
            fallback_daily_limit=settings.risk_fallback_daily_limit,
        ),
        headers={"Authorization": f"Bearer {settings.internal_key()}"},
    )
    ledger = Ledger(
        db,
        retry=RetryPolicy(
            max_attempts=settings.ledger_max_attempts,
            base_s=settings.ledger_retry_base_s,
            cap_s=settings.ledger_retry_cap_s,
        ),
        idempotency_ttl_hours=settings.idempotency_ttl_hours,
        hold_ttl=timedelta(hours=settings.hold_ttl_hours),
        max_concurrent_transactions=settings.ledger_max_concurrent_transactions,
        group_commit=settings.ledger_group_commit,
        group_commit_max_batch=settings.ledger_group_commit_max_batch,
        commit_timeout_s=settings.db_commit_timeout_ms / 1000,
    )
    return Container(
        settings=settings,
        db=db,
        identity=Identity(db, settings.admin_key.get_secret_value()),
        wallets=wallets,
        ledger=ledger,
        payments=Payments(ledger, wallets, risk),
        dependencies=dependencies,
        faults=faults,
        chaos=ChaosControl(db, settings, faults),
        outbox=OutboxAdmin(db),
        slo=SloReports(
            db,
            objective=settings.slo_objective,
            latency_threshold_ms=settings.slo_latency_threshold_ms,
        ),
        monitor_history=MonitorHistory(db, settings.monitor_failover_cooldown_s),
        rate_limits=rate_limits_for(settings, dependencies.redis),
    )


def rate_limits_for(settings: Settings, redis: Redis | None = None) -> RateLimits:
    """The API's rate limits, counted in Redis when one is configured (shared by every worker
    and host), in the worker's memory otherwise; ``redis`` (the breakers' client) shares the
    keys known to be good."""
    storage = None
    if settings.redis_url is not None:
        storage = shared_storage(
            settings.redis_url.get_secret_value(), timeout_s=settings.redis_timeout_ms / 1000
        )
    policy = RatePolicy(
        per_user_key=settings.rate_limit_per_user_key,
        per_admin_key=settings.rate_limit_per_admin_key,
        auth_failures=settings.rate_limit_auth_failures,
    )
    return RateLimits(policy, enabled=settings.rate_limit_enabled, storage=storage, redis=redis)


def api_readiness(c: Container) -> Readiness:
    """``/health/ready`` of the API: the pool, PostgreSQL, the outbox backlog, each
    dependency's circuit and Redis; ``/metrics`` also reads the ledger's gauges first."""
    settings = c.settings
    timeout_s = settings.health_check_timeout_s
    limits = BacklogLimits(settings.health_backlog_warn, settings.health_backlog_age_warn_s)
    probes = [
        pool_probe(c.db),
        postgresql_probe(c.db, timeout_s),
        outbox_probe(c.db, limits, timeout_s),
        *replica_probes(c.db),
        *circuit_probes(c.dependencies),
    ]
    if c.dependencies.redis is not None:
        probes.append(redis_probe(c.dependencies.redis, c.db.service, timeout_s))
    if settings.backup_enabled:
        from steadypay.bootstrap.backup import backup_probe  # boto3 and barman's helpers

        probes.append(backup_probe(c.db, settings.backup_verified_max_age_s))

    async def refresh() -> None:
        await refresh_state_gauges(c.db, timeout_s)

    return Readiness(
        "api", "steadypay payment API", probes, timeout_s=timeout_s, refreshers=[refresh]
    )


def create_app(settings: Settings, container: Container | None = None) -> FastAPI:
    """The app. Pass ``container`` to share one built elsewhere (tests); else it is built in
    the lifespan, with this app's fault injector."""
    faults = container.faults if container is not None else FaultInjector()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = container is None
        built = container or await build(settings, faults)
        app.state.container = built
        app.state.readiness = api_readiness(built)
        jobs = [
            asyncio.create_task(purge_forever(built.db, settings.idempotency_purge_interval_s)),
            asyncio.create_task(
                expire_holds_forever(built.ledger, settings.hold_expiry_interval_s)
            ),
        ]
        try:
            async with serving(settings, built.db, app, faults):
                yield
        finally:
            for job in jobs:
                job.cancel()
            for job in jobs:
                with contextlib.suppress(asyncio.CancelledError):
                    await job
            if owned:
                await built.close()

    app = api_app(lifespan, faults, InputLimits.of(settings))
    guard_metrics(app, settings)
    return app


def app_from_env() -> FastAPI:
    """uvicorn factory for worker processes: settings come from STEADYPAY_* variables."""
    settings = Settings()
    configure_logging(settings, "api")
    return create_app(settings)
