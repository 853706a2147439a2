"""The outbox relay: claims due ``outbox_events`` and POSTs them to the notification service.

Delivery is at least once; the receiver dedupes by event id (sent as the Idempotency-Key).

- **Exclusive claims.** ``claim()`` leases a batch in one statement (``FOR UPDATE SKIP LOCKED``
  inside, ``next_attempt_at = now() + lease`` outside): relays running side by side get disjoint
  batches, and an event claimed by one is not due for any other until its lease ends.
- **Leases end.** A relay that dies mid-batch leaves its events leased; they are due again
  ``lease_s`` later. A live relay never starts a delivery that could outlast its lease (one
  whose pipeline deadline would end after it): it releases that event instead.
- **Fencing.** An outcome is written only if the event was not claimed again in between
  (``attempts`` is the fencing token), so a slow relay cannot overwrite a newer schedule.
- **Failures** (the client's ``DependencyUnavailable`` errors, or a non-2xx answer) schedule the
  next attempt after full-jitter backoff (``backoff_base_s * 2^(attempts-1)`` capped at
  ``backoff_cap_s``; at least the circuit's ``retry_after_s`` when it is open); an event older
  than ``max_age_s`` that fails is marked ``dead`` for an operator to redeliver.
- **The loop survives** the database going away: ``run_forever`` logs, backs off and goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import random
import time
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any

import asyncpg
import structlog

from steadypay.db.router import DatabaseRouter
from steadypay.errors import CircuitOpenError, DependencyUnavailable, ServiceUnavailable
from steadypay.observability.gauges import OUTBOX_DELIVERY_ATTEMPTS
from steadypay.outbox import repository
from steadypay.outbox.domain import (
    OutboxEvent,
    OutboxStatus,
    RelayStats,
    describe_failure,
)
from steadypay.outbox.options import RelayOptions
from steadypay.resilience.client import ReliableServiceClient
from steadypay.resilience.retry import poll_backoff_s, retry_delay_s

log = structlog.get_logger(__name__)

EVENTS_PATH = "/events"
BATCH_SUFFIX = "/batch"
ONE_BY_ONE_FOR_S = 300.0
"""After the receiver answers 404/405 to a batch (an older notification service), how long
the relay posts events one by one before it tries a batch again."""


class _Outcome(Enum):
    DELIVERED = "delivered"
    RETRIED = "retried"
    DEAD = "dead"
    DEFERRED = "deferred"
    UNRECORDED = "unrecorded"


# The ``outcome`` label of steadypay_outbox_delivery_attempts_total for each outcome.
_METRIC_OUTCOME = {
    _Outcome.DELIVERED: "delivered",
    _Outcome.RETRIED: "failed",
    _Outcome.DEAD: "dead",
    _Outcome.DEFERRED: "deferred",
    _Outcome.UNRECORDED: "unrecorded",
}


class OutboxRelay:
    def __init__(
        self,
        db: DatabaseRouter,
        client: ReliableServiceClient,
        options: RelayOptions | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        path: str = EVENTS_PATH,
        rng: Callable[[], float] = random.random,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        options = options or RelayOptions()
        self._delivery_budget_s = client.pipeline.config.total_timeout_s
        if self._delivery_budget_s >= options.lease_s:
            raise ValueError(
                f"lease_s ({options.lease_s}) must exceed the {client.dependency!r} dependency's "
                f"total_timeout_s ({self._delivery_budget_s}): a lease must outlive a delivery"
            )
        self._db = db
        self._client = client
        self._options = options
        self._batch_path = path + BATCH_SUFFIX
        self._one_by_one_until = -math.inf
        self._headers = dict(headers or {})
        self._path = path
        self._rng = rng
        self._monotonic = monotonic

    async def claim(self) -> list[OutboxEvent]:
        """Lease up to ``batch_size`` due events, oldest first."""
        async with self._db.writer().connection() as conn:
            return await repository.claim(conn, self._options.batch_size, self._options.lease_s)

    async def run_once(self) -> RelayStats:
        """Claim one batch and attempt each event (at most ``concurrency`` at a time)."""
        claimed_at = self._monotonic()
        events = await self.claim()
        stats = RelayStats(claimed=len(events))
        if not events:
            return stats
        slots = asyncio.Semaphore(self._options.concurrency)

        async def bounded(job: list[OutboxEvent]) -> list[_Outcome]:
            async with slots:
                if len(job) == 1:
                    return [await self._attempt(job[0], claimed_at)]
                return await self._attempt_batch(job, claimed_at)

        size = self._options.delivery_batch_size
        if size > 1 and self._monotonic() >= self._one_by_one_until:
            jobs = [events[i : i + size] for i in range(0, len(events), size)]
        else:
            jobs = [[event] for event in events]
        outcomes = [o for done in await asyncio.gather(*map(bounded, jobs)) for o in done]
        for outcome in outcomes:
            name = outcome.value
            setattr(stats, name, getattr(stats, name) + 1)
            OUTBOX_DELIVERY_ATTEMPTS.labels(_METRIC_OUTCOME[outcome]).inc()
        log.info(
            "outbox_relay_batch",
            claimed=stats.claimed,
            delivered=stats.delivered,
            retried=stats.retried,
            dead=stats.dead,
            deferred=stats.deferred,
            unrecorded=stats.unrecorded,
        )
        return stats

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Relay until ``stop`` is set. A full batch is followed at once by the next; otherwise
        the relay sleeps ``idle_sleep_s``. DatabaseRouter trouble is logged and waited out."""
        options = self._options
        log.info("outbox_relay_started", batch_size=options.batch_size, lease_s=options.lease_s)
        failures = 0
        while not stop.is_set():
            try:
                stats = await self.run_once()
            except ServiceUnavailable as exc:
                failures += 1
                delay = poll_backoff_s(failures, options.idle_sleep_s)
                log.warning("outbox_relay_db_unavailable", error=exc.code, retry_in_s=delay)
                await _sleep_unless(stop, delay)
                continue
            except Exception:  # a bug must not stop event delivery for good
                failures += 1
                log.exception("outbox_relay_error")
                await _sleep_unless(stop, poll_backoff_s(failures, options.idle_sleep_s))
                continue
            failures = 0
            if stats.claimed < options.batch_size:
                await _sleep_unless(stop, options.idle_sleep_s)
        log.info("outbox_relay_stopped")

    def _lease_too_short(self, claimed_at: float) -> bool:
        return self._monotonic() - claimed_at + self._delivery_budget_s >= self._options.lease_s

    async def _attempt(self, event: OutboxEvent, claimed_at: float) -> _Outcome:
        try:
            if self._lease_too_short(claimed_at):
                async with self._db.writer().connection() as conn:
                    await repository.release_many(conn, [(event.id, event.attempts)])
                return _Outcome.DEFERRED
            status_code, error, delay_floor = await self._post(event)
            async with self._db.writer().connection() as conn:
                if error is None:
                    await repository.mark_delivered_many(conn, [event.id])
                    log.debug("outbox_event_delivered", event_id=str(event.id), type=event.type)
                    return _Outcome.DELIVERED
                return await self._record_failure(conn, event, status_code, error, delay_floor)
        except ServiceUnavailable as exc:
            log.warning("outbox_event_outcome_unrecorded", event_id=str(event.id), error=exc.code)
            return _Outcome.UNRECORDED

    async def _attempt_batch(self, events: list[OutboxEvent], claimed_at: float) -> list[_Outcome]:
        """Deliver ``events`` in one POST to the batch endpoint, mark the accepted ones
        delivered in one statement, and schedule a retry for each one that was not."""
        try:
            if self._lease_too_short(claimed_at):
                async with self._db.writer().connection() as conn:
                    await repository.release_many(conn, [(e.id, e.attempts) for e in events])
                return [_Outcome.DEFERRED] * len(events)
            status_code, answers, delay_floor = await self._post_batch(events)
            if status_code in (404, 405):  # a receiver without the batch endpoint
                self._one_by_one_until = self._monotonic() + ONE_BY_ONE_FOR_S
                log.warning(
                    "outbox_batch_endpoint_missing", status=status_code, path=self._batch_path
                )
                return [await self._attempt(e, claimed_at) for e in events]
            outcomes: list[_Outcome] = []
            async with self._db.writer().connection() as conn:
                delivered = [e.id for e, a in zip(events, answers, strict=True) if a is None]
                if delivered:
                    await repository.mark_delivered_many(conn, delivered)
                    outcomes += [_Outcome.DELIVERED] * len(delivered)
                for event, answer in zip(events, answers, strict=True):
                    if answer is not None:
                        code, error = answer
                        outcomes.append(
                            await self._record_failure(conn, event, code, error, delay_floor)
                        )
            return outcomes
        except ServiceUnavailable as exc:
            log.warning("outbox_batch_outcome_unrecorded", events=len(events), error=exc.code)
            return [_Outcome.UNRECORDED] * len(events)

    async def _record_failure(
        self,
        conn: asyncpg.Connection,
        event: OutboxEvent,
        status_code: int | None,
        error: str,
        delay_floor: float,
    ) -> _Outcome:
        options = self._options
        delay = max(
            delay_floor,
            retry_delay_s(event.attempts, options.backoff_base_s, options.backoff_cap_s, self._rng),
        )
        status = await repository.record_failure(
            conn,
            event.id,
            event.attempts,
            delay_s=delay,
            error=describe_failure(status_code, error),
            max_age_s=options.max_age_s,
        )
        if status is OutboxStatus.DEAD:
            log.error(
                "outbox_event_dead",
                event_id=str(event.id),
                type=event.type,
                attempts=event.attempts,
                error=error,
            )
            return _Outcome.DEAD
        log.warning(
            "outbox_event_retry_scheduled",
            event_id=str(event.id),
            type=event.type,
            attempts=event.attempts,
            retry_in_s=round(delay, 3),
            error=error,
            fenced=status is None,
        )
        return _Outcome.RETRIED

    async def _post(self, event: OutboxEvent) -> tuple[int | None, str | None, float]:
        """(status code, error or None on success, minimum delay before the next attempt)."""
        try:
            response = await self._client.post(
                self._path,
                json=event.payload,
                idempotency_key=str(event.id),
                headers=self._headers,
            )
        except CircuitOpenError as exc:
            return None, f"{exc.code}: {exc.message}", exc.retry_after_s or 0.0
        except DependencyUnavailable as exc:
            status_code = getattr(exc, "status_code", None)
            return status_code, f"{exc.code}: {exc.message}", 0.0
        if 200 <= response.status_code < 300:
            return response.status_code, None, 0.0
        return response.status_code, response.text[:300] or "no body", 0.0

    async def _post_batch(
        self, events: list[OutboxEvent]
    ) -> tuple[int | None, list[tuple[int | None, str] | None], float]:
        """(status code, per event None if the receiver has it or (status code, error), minimum
        delay before the next attempt). The key is derived from the event ids: a retry of the
        same batch sends the same key (the receiver dedupes by event id anyway)."""
        ids = ",".join(str(e.id) for e in events)
        key = "events-" + hashlib.sha256(ids.encode()).hexdigest()
        try:
            response = await self._client.post(
                self._batch_path,
                json={"events": [e.payload for e in events]},
                idempotency_key=key,
                headers=self._headers,
            )
        except CircuitOpenError as exc:
            failure: tuple[int | None, str] = (None, f"{exc.code}: {exc.message}")
            return None, [failure] * len(events), exc.retry_after_s or 0.0
        except DependencyUnavailable as exc:
            failure = (getattr(exc, "status_code", None), f"{exc.code}: {exc.message}")
            return failure[0], [failure] * len(events), 0.0
        status = response.status_code
        if not 200 <= status < 300:
            return status, [(status, response.text[:300] or "no body")] * len(events), 0.0
        try:
            results = response.json()["results"]
            if not isinstance(results, list) or len(results) != len(events):
                raise ValueError("one result per event expected")
            answers = [
                _answer(event, result) for event, result in zip(events, results, strict=True)
            ]
        except (ValueError, KeyError, TypeError) as exc:
            failure = (status, f"malformed answer from the batch endpoint: {exc}")
            return status, [failure] * len(events), 0.0
        return status, answers, 0.0


def _answer(event: OutboxEvent, result: Any) -> tuple[int | None, str] | None:
    """None if the receiver has ``event`` (accepted now or before), else why it refused it."""
    if not isinstance(result, dict):
        raise TypeError("a result is not an object")
    if result.get("status") in ("accepted", "duplicate") and result.get("id") == str(event.id):
        return None
    error = result.get("error")
    message = error.get("message") if isinstance(error, dict) else None
    return None, str(message or f"not accepted: {result.get('status')!r}")


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
