"""Judging a transfer before money moves: the fraud service, or the seed's rules in-process.

The fraud service is asked through its ``ReliableServiceClient`` (retries under budget, breaker,
a total risk deadline of 300 ms by default). When it cannot answer — circuit open, timeout,
5xx, bulkhead full, or an answer we cannot read — the payment does not fail: the seed's fallback
rules decide instead (amount > 10,000 → review; sender's daily total + amount > 50,000 → review).

The daily total comes from the Redis hash ``daily_total:{user_id}`` (minor units per currency,
expiring at the end of the UTC day) when Redis is configured, else — or if Redis is down — from
the ledger. Thresholds are in major units of the transfer's currency (no FX conversion).
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast
from uuid import UUID

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from steadypay.db.router import DatabaseRouter
from steadypay.errors import DependencyUnavailable
from steadypay.ledger.domain import Risk, Transfer
from steadypay.money import format_amount, get_currency
from steadypay.resilience.client import ReliableServiceClient

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class RiskPolicy:
    review_above_score: int = 80
    deadline_s: float = 0.3
    fallback_amount_limit: int = 10_000
    """Major units: a larger amount is held for review when the fraud service is down."""
    fallback_daily_limit: int = 50_000


@dataclass(frozen=True, slots=True)
class RiskQuestion:
    transfer_id: UUID
    sender_user_id: UUID
    receiver_user_id: UUID | None
    from_wallet_id: UUID
    to_wallet_id: UUID
    amount: int
    currency: str
    sender_created_at: datetime


def end_of_day(now: datetime) -> datetime:
    return (now.astimezone(UTC) + timedelta(days=1)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )


class DailyTotals:
    """How much a sender has sent today (minor units, per currency)."""

    def __init__(self, db: DatabaseRouter, redis: Redis | None) -> None:
        self._db = db
        self._redis = redis

    @staticmethod
    def key(user_id: UUID) -> str:
        return f"daily_total:{user_id}"

    async def get(self, user_id: UUID, currency: str) -> tuple[int, str]:
        """(total, source) where source is "redis" or "ledger"."""
        if self._redis is not None:
            try:
                value = await cast(
                    Awaitable[bytes | None], self._redis.hget(self.key(user_id), currency)
                )
                if value is not None:
                    return int(value), "redis"
                # No total in Redis (nothing sent today, or Redis lost it): ask the ledger.
            except (RedisError, OSError, ValueError) as exc:
                log.warning("daily_total_redis_unavailable", error=type(exc).__name__)
        async with self._db.reader().connection() as conn:
            total = await conn.fetchval(
                """
                SELECT coalesce(sum(t.amount), 0) FROM transfers t
                JOIN wallets w ON w.id = t.from_wallet_id
                WHERE w.user_id = $1 AND t.currency = $2 AND t.type = 'transfer'
                  AND t.status IN ('completed', 'pending_review')
                  AND t.created_at >= date_trunc('day', now() AT TIME ZONE 'UTC')
                                      AT TIME ZONE 'UTC'
                """,
                user_id,
                currency,
            )
        return int(total), "ledger"

    async def add(self, user_id: UUID, currency: str, amount: int) -> None:
        """Count a transfer that went through. Best effort: the ledger stays the truth."""
        if self._redis is None:
            return
        key = self.key(user_id)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hincrby(key, currency, amount)
                pipe.expireat(key, end_of_day(datetime.now(UTC)))
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("daily_total_not_recorded", error=type(exc).__name__)


class RiskAssessor:
    def __init__(
        self,
        fraud: ReliableServiceClient | None,
        totals: DailyTotals,
        policy: RiskPolicy | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """``headers`` go with every fraud check: the internal service key's Authorization."""
        self._fraud = fraud
        self._headers = dict(headers or {})
        self._totals = totals
        self._policy = policy or RiskPolicy()

    async def record(self, sender_user_id: UUID, transfer: Transfer) -> None:
        """A transfer went through (or is held): it counts toward its sender's daily total."""
        await self._totals.add(sender_user_id, transfer.currency, transfer.amount)

    async def assess(self, question: RiskQuestion) -> Risk:
        if self._fraud is not None:
            verdict = await self._ask_service(question)
            if verdict is not None:
                return verdict
        return await self._fallback(question)

    async def _ask_service(self, q: RiskQuestion) -> Risk | None:
        assert self._fraud is not None
        body = {
            "transfer_id": str(q.transfer_id),
            "sender_user_id": str(q.sender_user_id),
            "receiver_user_id": str(q.receiver_user_id) if q.receiver_user_id else None,
            "from_wallet_id": str(q.from_wallet_id),
            "to_wallet_id": str(q.to_wallet_id),
            "amount": format_amount(q.amount, get_currency(q.currency)),
            "amount_minor": q.amount,
            "currency": q.currency,
            "sender_created_at": q.sender_created_at.isoformat(),
        }
        try:
            response = await self._fraud.post(
                "/check-fraud",
                json=body,
                headers=self._headers,
                idempotency_key=str(q.transfer_id),
                timeout_s=self._policy.deadline_s,
            )
        except DependencyUnavailable as exc:
            log.info("fraud_service_unavailable", reason=exc.code, transfer_id=str(q.transfer_id))
            return None
        try:
            answer = response.json()
            score = int(answer["risk_score"])
            reasons = tuple(str(r) for r in answer.get("reasons", []))
            if response.status_code != 200 or not 0 <= score <= 100:
                raise ValueError(f"status {response.status_code}, score {score}")
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("fraud_service_unreadable", error=str(exc), status=response.status_code)
            return None
        return Risk(score, "service", reasons, review=score > self._policy.review_above_score)

    async def _fallback(self, q: RiskQuestion) -> Risk:
        scale = 10 ** get_currency(q.currency).exponent
        reasons: list[str] = []
        if q.amount > self._policy.fallback_amount_limit * scale:
            reasons.append(f"fallback:amount_over_{self._policy.fallback_amount_limit}")
        total, source = await self._totals.get(q.sender_user_id, q.currency)
        if total + q.amount > self._policy.fallback_daily_limit * scale:
            reasons.append(f"fallback:daily_total_over_{self._policy.fallback_daily_limit}")
        reasons.append(f"daily_total_source:{source}")
        return Risk(None, "fallback", tuple(reasons), review=len(reasons) > 1)
