"""The composition root: builds every long-lived object from one Settings and wires them.

Nothing else in steadypay opens a connection or reads configuration. The API, the CLI and the
tests all start here.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from datetime import timedelta

from steadypay.config import Settings
from steadypay.db.pool import Database, PoolOptions, create_database
from steadypay.identity.service import Identity
from steadypay.ledger.service import Ledger, RetryPolicy
from steadypay.ledger.wallets import Wallets
from steadypay.payments.risk import DailyTotals, RiskAssessor, RiskPolicy
from steadypay.payments.service import Payments
from steadypay.resilience.client import ReliableServiceClient
from steadypay.resilience.clock import SYSTEM_CLOCK, Clock
from steadypay.resilience.events import Events, ObservedEvents
from steadypay.resilience.pipeline import Pipeline
from steadypay.resilience.registry import Dependencies
from steadypay.resilience.store import BreakerStore, LocalStore


@dataclass(slots=True)
class Container:
    settings: Settings
    db: Database
    identity: Identity
    wallets: Wallets
    ledger: Ledger
    payments: Payments
    dependencies: Dependencies

    async def close(self) -> None:
        await self.dependencies.aclose()
        await self.db.close()


def pool_options(settings: Settings) -> PoolOptions:
    return PoolOptions(
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
        connect_timeout_s=settings.db_connect_timeout_s,
        acquire_timeout_s=settings.db_acquire_timeout_s,
        statement_timeout_ms=settings.db_statement_timeout_ms,
        lock_timeout_ms=settings.db_lock_timeout_ms,
    )


async def build(settings: Settings) -> Container:
    if settings.admin_key is None:
        raise RuntimeError(
            "no admin key: set STEADYPAY_ADMIN_KEY (`steadypay up` generates one for you)"
        )
    db = await create_database(settings.require_database_url(), pool_options(settings))
    wallets = Wallets(db)
    dependencies = build_dependencies(settings)
    risk = RiskAssessor(
        dependencies.clients.get("fraud"),
        DailyTotals(db, dependencies.redis),
        RiskPolicy(
            review_above_score=settings.risk_review_above_score,
            deadline_s=settings.risk_deadline_ms / 1000,
            fallback_amount_limit=settings.risk_fallback_amount_limit,
            fallback_daily_limit=settings.risk_fallback_daily_limit,
        ),
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
    )
    return Container(
        settings=settings,
        db=db,
        identity=Identity(db, settings.admin_key.get_secret_value()),
        wallets=wallets,
        ledger=ledger,
        payments=Payments(ledger, wallets, risk),
        dependencies=dependencies,
    )


def build_dependencies(
    settings: Settings, *, clock: Clock = SYSTEM_CLOCK, events: Events | None = None
) -> Dependencies:
    """A ReliableServiceClient per configured dependency. With ``STEADYPAY_REDIS_URL`` their
    breakers share state through Redis (falling back to local state when Redis is down)."""
    events = events or ObservedEvents()
    redis = None
    if settings.redis_url is not None:
        from steadypay.resilience.redis_store import redis_client

        redis = redis_client(
            settings.redis_url.get_secret_value(), timeout_s=settings.redis_timeout_ms / 1000
        )
    clients: dict[str, ReliableServiceClient] = {}
    configured = settings.dependency_settings()
    for name, dependency in configured.items():
        config = dependency.pipeline_config()
        store: BreakerStore = LocalStore(config.breaker, clock)
        if redis is not None:
            from steadypay.resilience.redis_store import RedisStore

            store = RedisStore(
                redis,
                name,
                config.breaker,
                fallback=store,
                events=events,
                cooldown_s=settings.breaker_store_cooldown_s,
                clock=clock,
            )
        pipeline = Pipeline(name, config, store=store, clock=clock, events=events)
        assert dependency.url is not None  # dependency_settings() guarantees it
        clients[name] = ReliableServiceClient(dependency.url, pipeline)
    critical = frozenset(n for n, d in configured.items() if d.critical)
    return Dependencies(clients, critical, redis)


_frozen = False


def freeze_startup_objects() -> None:
    """Once per process: collect, then move every object alive now (modules, the app, its
    routes and schemas, pools) out of the garbage collector's sight (``gc.freeze``). They live
    as long as the process, yet each full collection traversed all of them: in the payments
    benchmark an API worker's gen-2 collections paused it 86 ms on average (37 in a run), and
    20 ms once frozen, which shows in the latency tail. Services call it when they have
    started; a process that starts several apps (the test suite) freezes only at the first."""
    global _frozen
    if _frozen:
        return
    _frozen = True
    gc.collect()
    gc.freeze()


def configure_logging(settings: Settings, service: str = "steadypay") -> None:
    """Structured logs for this process (see :mod:`steadypay.observability.logging`)."""
    from steadypay.observability.logging import configure_logging as configure

    configure(settings.log_level, settings.log_json, service)
