"""Runtime control of fault injection: the configuration lives in PostgreSQL
(``chaos.config``), written by ``PUT /v1/admin/chaos`` and followed by every process, which
reads it every ``interval_s`` into its :class:`~steadypay.faults.injector.FaultInjector`.

Without a stored configuration, or once it has expired, the process falls back to the one it
started with (``STEADYPAY_CHAOS_*``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import structlog

from steadypay.config import Environment, Settings
from steadypay.db.router import DatabaseRouter
from steadypay.errors import ChaosForbidden, ServiceUnavailable
from steadypay.faults.injector import ChaosConfig, FaultInjector, FaultRule

log = structlog.get_logger(__name__)

REFRESH_INTERVAL_S = 1.0
MAX_DURATION = timedelta(hours=24)


def allowed(settings: Settings) -> bool:
    return settings.env is not Environment.PRODUCTION or settings.chaos_allow_in_production


def startup_config(settings: Settings) -> ChaosConfig:
    """The configuration from ``STEADYPAY_CHAOS_*``: one rule for every hook."""
    if not settings.chaos_enabled:
        return ChaosConfig()
    rule = FaultRule(
        failure_rate=settings.chaos_failure_rate,
        latency_rate=settings.chaos_latency_rate,
        latency_ms=settings.chaos_latency_ms,
    )
    return ChaosConfig(enabled=True, rules=(rule,), seed=settings.chaos_seed)


def configure_from_settings(settings: Settings, injector: FaultInjector) -> None:
    """At process start: refuse chaos in production unless allowed, then apply the env's."""
    injector.allowed = allowed(settings)
    config = startup_config(settings)
    if config.enabled and not injector.allowed:
        raise ChaosForbidden()
    injector.configure(config)


async def load(db: DatabaseRouter) -> ChaosConfig | None:
    async with db.reader().connection() as conn:
        row = await conn.fetchrow("SELECT config::text, expires_at FROM chaos.config")
    if row is None:
        return None
    config = ChaosConfig.model_validate_json(row["config"])
    return config.model_copy(update={"expires_at": row["expires_at"]})


async def store(db: DatabaseRouter, config: ChaosConfig, who: str) -> ChaosConfig:
    body = json.dumps(config.model_dump(mode="json", exclude={"expires_at"}))
    async with db.writer().transaction() as conn:
        await conn.execute(
            """
            INSERT INTO chaos.config (id, config, expires_at, updated_by)
            VALUES (1, $1::jsonb, $2, $3)
            ON CONFLICT (id) DO UPDATE SET config = EXCLUDED.config,
                expires_at = EXCLUDED.expires_at, updated_by = EXCLUDED.updated_by,
                updated_at = now()
            """,
            body,
            config.expires_at,
            who,
        )
    return config


def effective(stored: ChaosConfig | None, fallback: ChaosConfig) -> ChaosConfig:
    if stored is None or (stored.expires_at is not None and datetime.now(UTC) >= stored.expires_at):
        return fallback
    return stored


async def refresh_forever(
    db: DatabaseRouter,
    settings: Settings,
    injector: FaultInjector,
    interval_s: float = REFRESH_INTERVAL_S,
) -> None:
    """Follow the stored configuration; a database outage keeps the last one known (and the
    expiry still switches it off)."""
    fallback = startup_config(settings)
    while True:
        try:
            config = effective(await load(db), fallback)
            if config.enabled and not injector.allowed:
                config = ChaosConfig()
            injector.configure(config)
        except ServiceUnavailable:
            pass
        except Exception:
            log.exception("chaos_refresh_failed")
        await asyncio.sleep(interval_s)


@contextlib.asynccontextmanager
async def following(
    db: DatabaseRouter, settings: Settings, injector: FaultInjector
) -> AsyncIterator[None]:
    """For a process's lifespan: configure ``injector`` from settings, then keep it following
    the stored configuration."""
    configure_from_settings(settings, injector)
    task = asyncio.create_task(refresh_forever(db, settings, injector))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
