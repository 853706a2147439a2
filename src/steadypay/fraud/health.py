"""The fraud service's readiness: PostgreSQL (critical), its pool, Redis and the velocity store
(both only warnings: checks fall back to PostgreSQL without Redis)."""

from __future__ import annotations

from redis.asyncio import Redis

from steadypay.config import Settings
from steadypay.db.router import DatabaseRouter
from steadypay.fraud.service import FraudService
from steadypay.fraud.velocity import FallbackVelocity
from steadypay.observability.health import (
    Check,
    Probe,
    Readiness,
    Status,
    pool_probe,
    postgresql_probe,
    redis_probe,
)


def velocity_probe(service: FraudService) -> Probe:
    """``velocityStore:active``: the store that answers checks now (``redis`` or
    ``postgres``); ``warn`` while Redis is configured but checks fall back to PostgreSQL."""
    key = "velocityStore:active"

    async def run() -> list[Check]:
        store = service.store
        if isinstance(store, FallbackVelocity) and store.degraded:
            return [
                Check(
                    key, "component", Status.WARN, "postgres",
                    output="Redis is unreachable: velocity counts come from PostgreSQL",
                )
            ]  # fmt: skip
        return [Check(key, "component", Status.PASS, store.name)]

    return Probe(key, "component", False, run)


def fraud_readiness(
    settings: Settings, db: DatabaseRouter, redis: Redis | None, service: FraudService
) -> Readiness:
    timeout_s = settings.health_check_timeout_s
    probes = [pool_probe(db), postgresql_probe(db, timeout_s), velocity_probe(service)]
    if redis is not None:
        probes.append(redis_probe(redis, db.service, timeout_s))
    return Readiness("fraud", "steadypay fraud service", probes, timeout_s=timeout_s)
