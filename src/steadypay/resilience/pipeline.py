"""One resilience pipeline per dependency, in this order:

    total deadline -> bulkhead -> retry (with budget) -> circuit breaker -> per-attempt timeout

- The **deadline** bounds everything, waiting for the bulkhead and backoff sleeps included.
- The **bulkhead** holds one slot for the whole call, retries included, so retries cannot
  exceed the concurrency limit.
- **Retries** happen only for retryable outcomes (timeouts, connection errors, 5xx, 429) and
  only for idempotent calls (never for a caller's error, nor for a refusal of our credentials:
  the same request would be refused the same); each costs budget tokens; the wait is full
  jitter, or the dependency's ``Retry-After`` when longer; no sleep after the last attempt,
  none when the circuit is open (an open circuit is final), none that would outlive the
  deadline.
- The **breaker** sees every attempt, so a dead dependency trips it after
  ``failure_threshold`` attempts, not ``failure_threshold x attempts`` (the seed's flaw). It
  counts only what is the dependency's trouble for every caller alike (:func:`is_failure`):
  timeouts, connection errors, 5xx, and 401/403 (our own credentials refused: misconfigured,
  so every call fails). An answer about one caller's input (any other 4xx, or a steadypay
  error such as ValidationError raised by the operation) is that caller's business and counts
  as a success, the dependency having answered: a breaker shared by every user (through Redis,
  by every worker) must not be opened by one user's bad requests.
- The **attempt timeout** is ``min(attempt_timeout_s, time left)``.

The retry loop is tenacity's ``AsyncRetrying``, built anew for every call (its state is per
call) with our stop/wait/retry callbacks and our clock's sleep.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from steadypay.errors import (
    BulkheadFullError,
    CircuitOpenError,
    DependencyFailure,
    DependencyTimeout,
    ServiceUnavailable,
    SteadypayError,
)
from steadypay.resilience.breaker import CircuitBreaker
from steadypay.resilience.bulkhead import Bulkhead
from steadypay.resilience.clock import SYSTEM_CLOCK, Clock
from steadypay.resilience.deadline import Deadline
from steadypay.resilience.events import Events, ObservedEvents
from steadypay.resilience.retry import RetryBudget, full_jitter
from steadypay.resilience.store import Admission, BreakerConfig, BreakerStore, LocalStore

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    total_timeout_s: float = 1.0
    attempt_timeout_s: float = 0.5
    max_attempts: int = 3
    """First try plus retries (the seed's ``max_retries=2`` is 3 attempts)."""
    backoff_base_s: float = 0.05
    backoff_cap_s: float = 1.0
    bulkhead_max_concurrent: int = 64
    bulkhead_max_wait_s: float = 0.05
    budget_capacity: float = 500
    budget_retry_cost: float = 5
    budget_timeout_cost: float = 10
    breaker: BreakerConfig = field(default_factory=BreakerConfig)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.total_timeout_s <= 0 or self.attempt_timeout_s <= 0:
            raise ValueError("timeouts must be positive")


@dataclass(frozen=True, slots=True)
class Attempt:
    """What an operation learns about the attempt it is making."""

    number: int
    deadline: Deadline
    timeout_s: float


CREDENTIALS_REFUSED = frozenset({401, 403})
"""A dependency's answers that mean *our* credentials (a service key from the settings) were
refused: the same for every caller, so a failure of the dependency, not of the caller."""


def is_failure(exc: BaseException) -> bool:
    """The breaker's predicate. Counted: timeouts, connection errors, 5xx, and a refusal of our
    credentials (401/403), which fail every caller alike. Not counted: any other 4xx (429
    included: the dependency is alive and asks us to slow down), and a steadypay error that
    is not a ServiceUnavailable (a caller's error such as ValidationError or NotFound, raised by
    the operation from the dependency's answer): one caller's input is not the dependency's
    health."""
    if isinstance(exc, DependencyFailure):
        status = exc.status_code
        return status is None or status >= 500 or status in CREDENTIALS_REFUSED
    if isinstance(exc, CircuitOpenError):
        return False
    return not (isinstance(exc, SteadypayError) and not isinstance(exc, ServiceUnavailable))


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, DependencyTimeout):
        return True
    if isinstance(exc, DependencyFailure):
        status = exc.status_code
        return status is None or status in (429, 500, 502, 503, 504)
    return False


class Pipeline:
    def __init__(
        self,
        dependency: str,
        config: PipelineConfig,
        *,
        store: BreakerStore | None = None,
        clock: Clock = SYSTEM_CLOCK,
        events: Events | None = None,
        rng: Callable[[], float] = random.random,
        failure_predicate: Callable[[BaseException], bool] = is_failure,
    ) -> None:
        self.dependency = dependency
        self.config = config
        self._clock = clock
        self._events = events or ObservedEvents()
        self._rng = rng
        self._is_failure = failure_predicate
        self.breaker = CircuitBreaker(
            dependency,
            config.breaker,
            store or LocalStore(config.breaker, clock),
            clock,
            self._events,
        )
        self.bulkhead = Bulkhead(dependency, config.bulkhead_max_concurrent)
        self.budget = RetryBudget(
            config.budget_capacity, config.budget_retry_cost, config.budget_timeout_cost
        )
        self._events.budget(dependency, self.budget.tokens)

    async def call(
        self,
        operation: Callable[[Attempt], Awaitable[T]],
        *,
        idempotent: bool,
        timeout_s: float | None = None,
    ) -> T:
        """Run ``operation`` through the pipeline. Raises only steadypay errors for the
        dependency's trouble (CircuitOpenError, BulkheadFullError, DependencyTimeout,
        DependencyFailure) or whatever ``operation`` itself raises."""
        deadline = Deadline.after(timeout_s or self.config.total_timeout_s, self._clock)
        wait_s = min(self.config.bulkhead_max_wait_s, deadline.remaining())
        try:
            async with self.bulkhead.slot(wait_s):
                return await self._with_retries(operation, deadline, idempotent)
        except CircuitOpenError:
            self._events.call(self.dependency, "rejected_open")
            raise
        except BulkheadFullError:
            self._events.call(self.dependency, "rejected_bulkhead")
            raise

    async def _with_retries(
        self, operation: Callable[[Attempt], Awaitable[T]], deadline: Deadline, idempotent: bool
    ) -> T:
        spent = 0.0

        def wait(state: RetryCallState) -> float:
            """Full jitter, or the dependency's Retry-After when that is longer."""
            exc = state.outcome.exception() if state.outcome else None
            jitter = full_jitter(
                state.attempt_number - 1,
                self.config.backoff_base_s,
                self.config.backoff_cap_s,
                self._rng,
            )
            return max(jitter, getattr(exc, "server_retry_after_s", None) or 0.0)

        def stop(state: RetryCallState) -> bool:
            """Called after ``wait`` (tenacity >= 8.3): decides whether that sleep happens."""
            nonlocal spent
            exc = state.outcome.exception() if state.outcome else None
            if exc is None or state.attempt_number >= self.config.max_attempts:
                return True
            if self.breaker.open:
                return True  # the breaker just opened: the next attempt would be rejected
            if state.upcoming_sleep >= deadline.remaining():
                return True  # the next attempt could not start before the deadline
            cost = self.budget.try_spend(after_timeout=isinstance(exc, DependencyTimeout))
            self._events.budget(self.dependency, self.budget.tokens)
            if cost is None:
                return True  # budget exhausted: the dependency is struggling, don't pile on
            spent += cost
            self._events.call(self.dependency, "retry")
            return False

        retrying = AsyncRetrying(
            stop=stop,
            wait=wait,
            retry=retry_if_exception(lambda exc: idempotent and is_retryable(exc)),
            sleep=self._clock.sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                number = attempt.retry_state.attempt_number
                result = await self._attempt(operation, deadline, number)
        self.budget.on_success(spent)
        self._events.budget(self.dependency, self.budget.tokens)
        return result

    async def _attempt(
        self, operation: Callable[[Attempt], Awaitable[T]], deadline: Deadline, number: int
    ) -> T:
        timeout_s = min(self.config.attempt_timeout_s, deadline.remaining())
        if timeout_s <= 0:
            raise DependencyTimeout("deadline exceeded", dependency=self.dependency)
        admission = await self.breaker.acquire()
        started = self._clock.monotonic()
        try:
            async with asyncio.timeout(timeout_s):
                result = await operation(Attempt(number, deadline, timeout_s))
        except TimeoutError as exc:
            await self._finish(admission, "timeout", started, failure=True)
            raise DependencyTimeout(dependency=self.dependency, retry_after_s=1.0) from exc
        except DependencyTimeout:
            await self._finish(admission, "timeout", started, failure=True)
            raise
        except Exception as exc:
            failed = self._is_failure(exc)
            await self._finish(admission, "failure" if failed else "success", started, failed)
            raise
        await self._finish(admission, "success", started, failure=False)
        return result

    async def _finish(
        self, admission: Admission, outcome: str, started: float, failure: bool
    ) -> None:
        duration = self._clock.monotonic() - started
        self._events.call(self.dependency, outcome, duration)
        await self.breaker.record(admission, failure=failure, duration_s=duration)
