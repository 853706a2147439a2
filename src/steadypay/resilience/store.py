"""Where a circuit breaker's state lives, and the rules that move it.

The *state* (closed / open / half-open / forced, when the open period ends, how many trial calls
were admitted) lives in a :class:`BreakerStore`: :class:`LocalStore` for one process, or
``redis_store.RedisStore`` shared by every worker. Counting outcomes to decide *when* to trip
stays in the process (:mod:`steadypay.resilience.breaker`).

Every transition bumps a ``generation``. A call carries the generation it was admitted under, and
a result reported under an old generation cannot move the current state: a slow call admitted
before the circuit opened cannot close it later, and a hung half-open trial cannot either.

Rules (the Lua script in ``redis_store.py`` implements exactly these):

- CLOSED admits every call. ``trip`` moves it to OPEN for ``open_duration(trips)``.
- OPEN rejects until its period ends, then becomes HALF_OPEN.
- HALF_OPEN admits at most ``half_open_max_calls`` trials. That many successes close it; any
  failure re-opens it with a longer period. If it stays HALF_OPEN longer than
  ``half_open_timeout_s`` (a trial hung), it re-opens as if a trial had failed.
- FORCED_OPEN rejects everything and DISABLED admits everything without counting; both stay
  until an operator resets the breaker.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

from steadypay.resilience.clock import Clock


class State(IntEnum):
    """Values are the ``steadypay_circuit_breaker_state`` gauge's (forced states map to 2/0)."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2
    FORCED_OPEN = 3
    DISABLED = 4

    @property
    def gauge(self) -> int:
        return {State.FORCED_OPEN: 2, State.DISABLED: 0}.get(self, int(self))


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    failure_threshold: int = 5
    """Consecutive failures that trip the breaker (the seed's rule); 0 disables the rule."""
    failure_rate_threshold: float = 0.5
    """Failure share over the window that trips it, once ``minimum_calls`` were seen; 0 disables."""
    slow_call_rate_threshold: float = 1.0
    """Share of slow calls over the window that trips it; 0 disables."""
    slow_call_duration_s: float = 5.0
    window_s: float = 60.0
    window_buckets: int = 12
    minimum_calls: int = 20
    reset_timeout_s: float = 60.0
    """How long OPEN lasts the first time (the seed's default, 60 s)."""
    reset_backoff_multiplier: float = 2.0
    """Each re-trip without a close in between multiplies the open period; 1.0 disables."""
    max_reset_timeout_s: float = 300.0
    half_open_max_calls: int = 3
    half_open_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.half_open_max_calls < 1:
            raise ValueError("half_open_max_calls must be at least 1")
        if self.reset_backoff_multiplier < 1.0:
            raise ValueError("reset_backoff_multiplier must be >= 1")
        for name in ("failure_rate_threshold", "slow_call_rate_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")

    def open_duration(self, trips: int) -> float:
        """The open period after the ``trips``-th consecutive trip (1-based), capped."""
        if self.reset_backoff_multiplier == 1.0:
            return min(self.max_reset_timeout_s, self.reset_timeout_s)
        # Past the cap the exponent no longer matters; bounding it avoids float overflow.
        exponent = min(max(0, trips - 1), 64)
        growth = self.reset_backoff_multiplier**exponent
        return min(self.max_reset_timeout_s, self.reset_timeout_s * growth)


@dataclass(frozen=True, slots=True)
class Admission:
    """A call let through: under which generation, and whether it is a half-open trial."""

    state: State
    generation: int
    trial: bool


@dataclass(frozen=True, slots=True)
class Rejection:
    """A call refused without being made; ``retry_after_s`` is None while forced open."""

    state: State
    generation: int
    retry_after_s: float | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    state: State
    generation: int
    trips: int
    retry_after_s: float | None


class BreakerStore(Protocol):
    async def admit(self) -> Admission | Rejection: ...

    async def trip(self, generation: int) -> State:
        """CLOSED -> OPEN, if still in ``generation``. Returns the state after."""
        ...

    async def trial_result(self, generation: int, success: bool) -> State: ...

    async def force(self, state: State) -> State:
        """Operator action: FORCED_OPEN, DISABLED, or CLOSED (a reset)."""
        ...

    async def snapshot(self) -> Snapshot: ...


class LocalStore:
    """The state machine for one process, on an injectable monotonic clock."""

    def __init__(self, config: BreakerConfig, clock: Clock) -> None:
        self._config = config
        self._clock = clock
        self._state = State.CLOSED
        self._generation = 0
        self._trips = 0
        self._open_until = 0.0
        self._half_open_since = 0.0
        self._admitted = 0
        self._succeeded = 0

    def _move(self, state: State, now: float) -> None:
        self._state = state
        self._generation += 1
        if state is State.OPEN:
            self._trips += 1
            self._open_until = now + self._config.open_duration(self._trips)
        elif state is State.HALF_OPEN:
            self._half_open_since = now
            self._admitted = self._succeeded = 0
        elif state is State.CLOSED:
            self._trips = 0

    def _expire(self, now: float) -> None:
        if self._state is State.OPEN and now >= self._open_until:
            self._move(State.HALF_OPEN, now)
        elif (
            self._state is State.HALF_OPEN
            and now - self._half_open_since >= self._config.half_open_timeout_s
        ):
            self._move(State.OPEN, now)  # a trial hung: treat it as failed

    def _retry_after(self, now: float) -> float | None:
        if self._state is State.OPEN:
            return max(0.0, self._open_until - now)
        if self._state is State.HALF_OPEN:
            return max(0.0, self._half_open_since + self._config.half_open_timeout_s - now)
        return None  # FORCED_OPEN: until an operator says so

    async def admit(self) -> Admission | Rejection:
        now = self._clock.monotonic()
        self._expire(now)
        state = self._state
        if state is State.HALF_OPEN and self._admitted < self._config.half_open_max_calls:
            self._admitted += 1
            return Admission(state, self._generation, trial=True)
        if state in (State.CLOSED, State.DISABLED):
            return Admission(state, self._generation, trial=False)
        return Rejection(state, self._generation, self._retry_after(now))

    async def trip(self, generation: int) -> State:
        if self._state is State.CLOSED and generation == self._generation:
            self._move(State.OPEN, self._clock.monotonic())
        return self._state

    async def trial_result(self, generation: int, success: bool) -> State:
        now = self._clock.monotonic()
        self._expire(now)
        if self._state is not State.HALF_OPEN or generation != self._generation:
            return self._state
        if not success:
            self._move(State.OPEN, now)
        else:
            self._succeeded += 1
            if self._succeeded >= self._config.half_open_max_calls:
                self._move(State.CLOSED, now)
        return self._state

    async def force(self, state: State) -> State:
        if state not in (State.FORCED_OPEN, State.DISABLED, State.CLOSED):
            raise ValueError("an operator can force open, disable, or reset (close)")
        self._move(state, self._clock.monotonic())
        return self._state

    async def snapshot(self) -> Snapshot:
        now = self._clock.monotonic()
        self._expire(now)
        return Snapshot(self._state, self._generation, self._trips, self._retry_after(now))
