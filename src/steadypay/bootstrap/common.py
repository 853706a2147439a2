"""What every composition root of :mod:`steadypay.bootstrap` shares: pools, dependency
clients, Redis, logging, the lifespan part of a service, and the startup freeze.

Only this package (and the factories it calls) opens a pool or a client; only ``Settings``
reads the environment.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from redis.asyncio import Redis

from steadypay.config import DatabaseSettings, Settings
from steadypay.db.pool import Database, PoolOptions, create_database
from steadypay.db.router import DatabaseRouter
from steadypay.faults import FaultInjector, following
from steadypay.hooks import NO_FAULTS, FaultHook
from steadypay.http import observed
from steadypay.resilience.client import ReliableServiceClient
from steadypay.resilience.clock import SYSTEM_CLOCK, Clock
from steadypay.resilience.events import Events, ObservedEvents
from steadypay.resilience.pipeline import Pipeline
from steadypay.resilience.registry import Dependencies
from steadypay.resilience.settings import pipeline_config
from steadypay.resilience.store import BreakerStore, LocalStore


def pool_options(settings: DatabaseSettings) -> PoolOptions:
    return PoolOptions(
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
        connect_timeout_s=settings.db_connect_timeout_s,
        acquire_timeout_s=settings.db_acquire_timeout_s,
        statement_timeout_ms=settings.db_statement_timeout_ms,
        lock_timeout_ms=settings.db_lock_timeout_ms,
    )


def build_dependencies(
    settings: Settings,
    *,
    clock: Clock = SYSTEM_CLOCK,
    events: Events | None = None,
    faults: FaultHook = NO_FAULTS,
) -> Dependencies:
    """A ReliableServiceClient per configured dependency. With ``STEADYPAY_REDIS_URL`` their
    breakers share state through Redis (falling back to local state when Redis is down)."""
    events = events or ObservedEvents()
    redis = redis_for(settings)
    clients: dict[str, ReliableServiceClient] = {}
    configured = settings.dependency_settings()
    for name, dependency in configured.items():
        config = pipeline_config(dependency)
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
        clients[name] = ReliableServiceClient(dependency.url, pipeline, faults=faults)
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


def redis_for(settings: Settings, *, timeout_s: float | None = None) -> Redis | None:
    """A Redis client with short timeouts (``STEADYPAY_REDIS_TIMEOUT_MS`` unless ``timeout_s``)
    when ``STEADYPAY_REDIS_URL`` is set, else None."""
    if settings.redis_url is None:
        return None
    from steadypay.resilience.redis_store import redis_client

    timeout = timeout_s if timeout_s is not None else settings.redis_timeout_ms / 1000
    return redis_client(settings.redis_url.get_secret_value(), timeout_s=timeout)


async def open_database(
    settings: Settings,
    application_name: str = "steadypay",
    *,
    url: str | None = None,
    faults: FaultHook = NO_FAULTS,
    **overrides: Any,
) -> Database:
    """The process's pool on ``url`` (default: ``STEADYPAY_DATABASE_URL``), with the
    ``STEADYPAY_DB_*`` options and ``overrides`` (e.g. ``min_size=0``)."""
    options = dataclasses.replace(
        pool_options(settings), application_name=application_name, **overrides
    )
    return await create_database(url or settings.require_database_url(), options, faults)


async def open_router(
    settings: Settings,
    application_name: str = "steadypay",
    *,
    faults: FaultHook = NO_FAULTS,
    **overrides: Any,
) -> DatabaseRouter:
    """The process's database router: the pool on ``STEADYPAY_DATABASE_URL`` alone, or, with
    ``STEADYPAY_DATABASE_READ_URLS``, a :class:`~steadypay.db.replicated.ReplicatedDatabase`
    over it and one small pool per replica (opened lazily: a replica that is down does not
    stop the service from starting), probing their lag in the background."""
    primary = await open_database(settings, application_name, faults=faults, **overrides)
    if not settings.database_read_urls:
        return primary
    from steadypay.db.replicated import ReplicatedDatabase, member_name

    replicas: dict[str, Database] = {}
    try:
        for index, secret in enumerate(settings.database_read_urls):
            url = secret.get_secret_value()
            replicas[member_name(url, index)] = await open_database(
                settings, application_name, url=url, faults=faults, **(overrides | {"min_size": 0})
            )
    except BaseException:
        for opened in replicas.values():
            await opened.close()
        await primary.close()
        raise
    router = ReplicatedDatabase(primary, replicas, max_lag_s=settings.db_replica_max_lag_ms / 1000)
    router.start_probing()
    return router


@contextlib.asynccontextmanager
async def serving(
    settings: Settings, db: DatabaseRouter, app: FastAPI, faults: FaultInjector
) -> AsyncIterator[None]:
    """The part of a service's lifespan every service has: CloudWatch export and SLI rollups
    (:func:`steadypay.http.observed`), the fault injector following the stored chaos
    configuration, then the startup freeze."""
    app.state.database = db
    async with observed(settings, db, app), following(db, settings, faults):
        freeze_startup_objects()
        yield
