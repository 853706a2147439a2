"""The fraud check use case, and the composition of its history store."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import structlog
from redis.asyncio import Redis

from steadypay.db.router import DatabaseRouter
from steadypay.fraud.domain import Check, Facts, Verdict, WallClock, utc_now
from steadypay.fraud.redis_velocity import RedisVelocity
from steadypay.fraud.repository import PostgresVelocity
from steadypay.fraud.rules import FraudRules, evaluate
from steadypay.fraud.velocity import FallbackVelocity, Recorded, VelocityStore

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class FraudService:
    store: VelocityStore
    rules: FraudRules
    clock: WallClock = field(default=utc_now)

    async def check(self, check: Check) -> Recorded:
        """The verdict on ``check``: recorded and evaluated now, or the one given to an earlier
        check with the same ``transfer_id``."""

        def decide(facts: Facts) -> Verdict:
            return evaluate(check, facts, self.rules)

        recorded = await self.store.record(check, self.clock(), decide)
        log.info(
            "fraud_check",
            transfer_id=str(check.transfer_id),
            risk_score=recorded.verdict.risk_score,
            reasons=list(recorded.verdict.reasons),
            replayed=recorded.replayed,
            store=recorded.store,
        )
        return recorded


def retention(rules: FraudRules, idempotency_ttl: timedelta) -> timedelta:
    """How long a check must be remembered: for its velocity windows, for "paid this receiver
    before" and back-and-forth, and to replay its verdict to a retry."""
    return max(
        timedelta(seconds=rules.max_window_s),
        rules.receiver_memory,
        timedelta(minutes=rules.back_and_forth_minutes),
        idempotency_ttl,
    )


def build_store(
    db: DatabaseRouter,
    redis: Redis | None,
    rules: FraudRules,
    *,
    idempotency_ttl: timedelta,
    redis_timeout_s: float,
    cooldown_s: float,
) -> VelocityStore:
    """PostgreSQL alone, or Redis with PostgreSQL answering while Redis is in trouble."""
    postgres = PostgresVelocity(db, rules.windows_s)
    if redis is None:
        return postgres
    primary = RedisVelocity(
        redis,
        windows_s=rules.windows_s,
        pair_ttl=max(rules.receiver_memory, timedelta(minutes=rules.back_and_forth_minutes)),
        check_ttl=idempotency_ttl,
        timeout_s=redis_timeout_s,
    )
    return FallbackVelocity(primary, postgres, cooldown_s=cooldown_s)
