"""The circuit breaker: counts outcomes in this process, keeps its state in a store.

Trips on either rule (both configurable): ``failure_threshold`` consecutive failures (the
seed's), or — once ``minimum_calls`` were seen in the time window — a failure rate or a slow-call
rate at or above its threshold (resilience4j's). Which outcomes are failures is the caller's
predicate (the pipeline's): timeouts, connection errors and 5xx are; 4xx are not.
"""

from __future__ import annotations

from steadypay.errors import CircuitOpenError
from steadypay.resilience.clock import Clock
from steadypay.resilience.events import Events
from steadypay.resilience.store import (
    Admission,
    BreakerConfig,
    BreakerStore,
    Rejection,
    Snapshot,
    State,
)
from steadypay.resilience.window import SlidingWindow


class CircuitBreaker:
    def __init__(
        self,
        dependency: str,
        config: BreakerConfig,
        store: BreakerStore,
        clock: Clock,
        events: Events,
    ) -> None:
        self.dependency = dependency
        self.config = config
        self._store = store
        self._clock = clock
        self._events = events
        self._window = SlidingWindow(config.window_s, config.window_buckets)
        self._consecutive = 0
        self._generation = 0
        self._observed = State.CLOSED

    async def acquire(self) -> Admission:
        """Admit a call or raise :class:`CircuitOpenError` at once (nothing is called)."""
        decision = await self._store.admit()
        self._observe(decision.state, decision.generation, "admission")
        if isinstance(decision, Rejection):
            raise CircuitOpenError(dependency=self.dependency, retry_after_s=decision.retry_after_s)
        return decision

    async def record(self, admission: Admission, *, failure: bool, duration_s: float) -> None:
        """Report how an admitted call ended."""
        if admission.state is State.DISABLED:
            return
        slow = duration_s >= self.config.slow_call_duration_s
        if admission.trial:
            state = await self._store.trial_result(admission.generation, not (failure or slow))
            reason = "trial failed" if failure or slow else "trial succeeded"
            self._observe(state, None, reason)
            return
        if admission.generation != self._generation:
            return  # admitted under an earlier state: it cannot move the current one
        totals = self._window.record(self._clock.monotonic(), failure=failure, slow=slow)
        self._consecutive = self._consecutive + 1 if failure else 0
        trip_reason = self._trip_reason(totals.calls, totals.failure_rate, totals.slow_rate)
        if trip_reason is not None:
            state = await self._store.trip(admission.generation)
            self._observe(state, None, trip_reason)

    def _trip_reason(self, calls: int, failure_rate: float, slow_rate: float) -> str | None:
        c = self.config
        if c.failure_threshold and self._consecutive >= c.failure_threshold:
            return f"{self._consecutive} consecutive failures"
        if calls >= c.minimum_calls:
            if c.failure_rate_threshold and failure_rate >= c.failure_rate_threshold:
                return f"failure rate {failure_rate:.0%} over {calls} calls"
            if c.slow_call_rate_threshold and slow_rate >= c.slow_call_rate_threshold:
                return f"slow-call rate {slow_rate:.0%} over {calls} calls"
        return None

    def _observe(self, state: State, generation: int | None, reason: str) -> None:
        if generation is not None and generation != self._generation:
            # The state moved on (here or in another process): count afresh.
            self._generation = generation
            self._window.reset()
            self._consecutive = 0
        if state is not self._observed:
            self._events.transition(self.dependency, self._observed, state, reason)
            self._observed = state

    @property
    def open(self) -> bool:
        """Whether the last state this process saw rejects calls."""
        return self._observed in (State.OPEN, State.FORCED_OPEN)

    # --- operators -------------------------------------------------------------------------

    async def force_open(self) -> None:
        self._observe(await self._store.force(State.FORCED_OPEN), None, "forced open")

    async def disable(self) -> None:
        self._observe(await self._store.force(State.DISABLED), None, "disabled")

    async def reset(self) -> None:
        self._observe(await self._store.force(State.CLOSED), None, "reset")

    async def snapshot(self) -> Snapshot:
        snapshot = await self._store.snapshot()
        self._observe(snapshot.state, snapshot.generation, "snapshot")
        return snapshot
