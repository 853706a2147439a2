"""Velocity and history: where the fraud service remembers the checks it has seen.

A :class:`VelocityStore` does one thing per check, atomically for the sender: if the
``transfer_id`` was seen before, hand back the verdict given then (a replay, counted nothing);
else gather the :class:`~steadypay.fraud.domain.Facts` about the sender's history, record the
check, and keep the verdict that ``decide(facts)`` gives. So a retried check returns the same
verdict and never counts twice, and two checks of the same sender never both miss each other.

Two implementations: :class:`~steadypay.fraud.redis_velocity.RedisVelocity` (when
``STEADYPAY_REDIS_URL`` is set) and :class:`~steadypay.fraud.repository.PostgresVelocity`
(schema ``fraud``, from migration 0003). :class:`FallbackVelocity` uses Redis and answers a
check from PostgreSQL when Redis is in trouble.

What a fallback costs: the two stores do not share history. While Redis is down, velocity,
"first payment to this receiver" and back-and-forth see only the checks recorded in PostgreSQL,
and a retry of a check first answered by the other store is evaluated (and counted) afresh.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

import structlog

from steadypay.fraud.domain import Check, Facts, Verdict
from steadypay.resilience.clock import SYSTEM_CLOCK, Clock

log = structlog.get_logger(__name__)

StoreName = Literal["redis", "postgres"]
Decide = Callable[[Facts], Verdict]


class StoreTrouble(Exception):
    """The store could not be used for this check (Redis down, slow, or answering nonsense).
    Raised only by stores that have a fallback; :class:`FallbackVelocity` catches it."""


@dataclass(frozen=True, slots=True)
class Recorded:
    verdict: Verdict
    replayed: bool
    """True when the transfer_id had been checked before: this is the verdict given then."""
    store: StoreName


class VelocityStore(Protocol):
    name: StoreName

    async def record(self, check: Check, at: datetime, decide: Decide) -> Recorded:
        """Replay the verdict of an earlier check with this ``transfer_id``, or record the check
        at time ``at`` and keep ``decide(facts)``.

        Raises :class:`~steadypay.errors.IdempotencyKeyReuse` when the ``transfer_id`` was
        checked with different details, :class:`StoreTrouble` (fallback stores only), or a
        :class:`~steadypay.errors.ServiceUnavailable` when nothing can answer.
        """
        ...


class FallbackVelocity:
    """``primary`` (Redis) unless it is in trouble; then ``fallback`` (PostgreSQL) for that
    check and, without asking the primary, for ``cooldown_s`` after. The first fallback of an
    episode is logged as a warning with the reason; recovery is logged with how many checks
    the fallback answered."""

    def __init__(
        self,
        primary: VelocityStore,
        fallback: VelocityStore,
        *,
        cooldown_s: float = 5.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.name: StoreName = primary.name
        self._primary = primary
        self._fallback = fallback
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._retry_at = 0.0
        self._down_since: float | None = None
        self._fallback_checks = 0

    @property
    def degraded(self) -> bool:
        """True while checks are answered by the fallback store."""
        return self._down_since is not None

    async def record(self, check: Check, at: datetime, decide: Decide) -> Recorded:
        if self._down_since is None or self._clock.monotonic() >= self._retry_at:
            try:
                recorded = await self._primary.record(check, at, decide)
            except StoreTrouble as exc:
                self._trouble(exc)
            else:
                self._recovered()
                return recorded
        self._fallback_checks += 1
        log.debug(
            "fraud_check_on_fallback_store",
            transfer_id=str(check.transfer_id),
            store=self._fallback.name,
        )
        return await self._fallback.record(check, at, decide)

    def _trouble(self, exc: StoreTrouble) -> None:
        now = self._clock.monotonic()
        self._retry_at = now + self._cooldown_s
        if self._down_since is not None:
            return
        self._down_since = now
        self._fallback_checks = 0
        log.warning(
            "fraud_velocity_fallback",
            store=self._primary.name,
            fallback=self._fallback.name,
            reason=str(exc),
            cooldown_s=self._cooldown_s,
        )

    def _recovered(self) -> None:
        if self._down_since is None:
            return
        log.info(
            "fraud_velocity_recovered",
            store=self._primary.name,
            down_for_s=round(self._clock.monotonic() - self._down_since, 3),
            checks_on_fallback=self._fallback_checks,
        )
        self._down_since = None
