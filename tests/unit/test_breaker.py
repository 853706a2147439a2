"""The circuit breaker's state machine, on a fake clock: every transition, deterministic."""

from __future__ import annotations

import pytest

from steadypay.errors import CircuitOpenError
from steadypay.resilience.breaker import CircuitBreaker
from steadypay.resilience.store import Admission, BreakerConfig, LocalStore, State
from steadypay.resilience.window import SlidingWindow
from tests.fakes import FakeClock, RecordingEvents

CONSECUTIVE_ONLY = BreakerConfig(
    failure_threshold=5, failure_rate_threshold=0, slow_call_rate_threshold=0,
    reset_timeout_s=60, reset_backoff_multiplier=2, max_reset_timeout_s=300,
    half_open_max_calls=2, half_open_timeout_s=10,
)  # fmt: skip


def make(
    config: BreakerConfig = CONSECUTIVE_ONLY,
) -> tuple[CircuitBreaker, FakeClock, RecordingEvents]:
    clock, events = FakeClock(), RecordingEvents()
    return CircuitBreaker("dep", config, LocalStore(config, clock), clock, events), clock, events


async def fail(breaker: CircuitBreaker, n: int = 1, duration: float = 0.01) -> None:
    for _ in range(n):
        await breaker.record(await breaker.acquire(), failure=True, duration_s=duration)


async def succeed(breaker: CircuitBreaker, n: int = 1, duration: float = 0.01) -> None:
    for _ in range(n):
        await breaker.record(await breaker.acquire(), failure=False, duration_s=duration)


async def test_consecutive_failures_trip_and_a_success_resets_the_count() -> None:
    breaker, _, events = make()
    await fail(breaker, 4)
    await succeed(breaker)
    await fail(breaker, 4)
    assert (await breaker.snapshot()).state is State.CLOSED
    await fail(breaker)
    assert (await breaker.snapshot()).state is State.OPEN
    assert events.transitions[-1][2] == "5 consecutive failures"


async def test_open_rejects_at_once_with_time_until_trial() -> None:
    breaker, clock, _events = make()
    await fail(breaker, 5)
    clock.advance(15)
    with pytest.raises(CircuitOpenError) as raised:
        await breaker.acquire()
    assert raised.value.retry_after_s == pytest.approx(45)
    assert raised.value.dependency == "dep"


async def test_half_open_admits_n_trials_and_n_successes_close() -> None:
    breaker, clock, events = make()
    await fail(breaker, 5)
    clock.advance(60)
    first, second = await breaker.acquire(), await breaker.acquire()
    assert first.trial
    assert second.trial
    with pytest.raises(CircuitOpenError):
        await breaker.acquire()  # only two trials at a time
    await breaker.record(first, failure=False, duration_s=0.01)
    assert (await breaker.snapshot()).state is State.HALF_OPEN
    await breaker.record(second, failure=False, duration_s=0.01)
    assert (await breaker.snapshot()).state is State.CLOSED
    assert events.states == [State.OPEN, State.HALF_OPEN, State.CLOSED]


async def test_a_failed_trial_reopens_for_longer_and_closing_resets_the_growth() -> None:
    breaker, clock, _ = make()
    await fail(breaker, 5)
    durations = []
    for _ in range(4):
        snapshot = await breaker.snapshot()
        durations.append(snapshot.retry_after_s)
        assert snapshot.retry_after_s is not None
        clock.advance(snapshot.retry_after_s)
        await fail(breaker)  # the trial fails
    assert durations == [60, 120, 240, 300]  # doubling, capped at 300
    clock.advance(300)
    await succeed(breaker, 2)
    assert (await breaker.snapshot()).state is State.CLOSED
    await fail(breaker, 5)
    assert (await breaker.snapshot()).retry_after_s == 60


async def test_a_hung_trial_cannot_keep_it_half_open() -> None:
    breaker, clock, _ = make()
    await fail(breaker, 5)
    clock.advance(60)
    hung = await breaker.acquire()
    await breaker.acquire()
    clock.advance(10)  # half_open_timeout_s
    with pytest.raises(CircuitOpenError):
        await breaker.acquire()
    assert (await breaker.snapshot()).state is State.OPEN
    # the hung trial finally succeeds: stale, it cannot close the circuit
    await breaker.record(hung, failure=False, duration_s=0.01)
    assert (await breaker.snapshot()).state is State.OPEN


async def test_results_from_before_a_trip_are_ignored() -> None:
    breaker, clock, _ = make()
    slow_starter = await breaker.acquire()
    await fail(breaker, 5)
    clock.advance(60)
    trial = await breaker.acquire()
    await breaker.record(slow_starter, failure=True, duration_s=0.01)
    assert (await breaker.snapshot()).state is State.HALF_OPEN
    await breaker.record(trial, failure=False, duration_s=0.01)


async def test_failure_rate_trips_only_after_minimum_calls() -> None:
    config = BreakerConfig(failure_threshold=0, failure_rate_threshold=0.5, minimum_calls=10,
                           slow_call_rate_threshold=0, window_s=10, window_buckets=10)  # fmt: skip
    breaker, _, _ = make(config)
    for _ in range(4):
        await fail(breaker)
        await succeed(breaker)
    await fail(breaker)  # 5 failures of 9 calls: rate above 50% but under the minimum
    assert (await breaker.snapshot()).state is State.CLOSED
    await succeed(breaker)  # 5 of 10 = 50%
    assert (await breaker.snapshot()).state is State.OPEN


async def test_failures_age_out_of_the_window() -> None:
    config = BreakerConfig(failure_threshold=0, failure_rate_threshold=0.5, minimum_calls=4,
                           slow_call_rate_threshold=0, window_s=10, window_buckets=10)  # fmt: skip
    breaker, clock, _ = make(config)
    await fail(breaker, 3)
    clock.advance(10)  # those three buckets are evicted
    await succeed(breaker, 3)
    await fail(breaker)  # 1 of 4
    assert (await breaker.snapshot()).state is State.CLOSED


async def test_slow_calls_trip_by_rate_even_when_they_succeed() -> None:
    config = BreakerConfig(failure_threshold=0, failure_rate_threshold=0, minimum_calls=5,
                           slow_call_rate_threshold=0.8, slow_call_duration_s=1.0)  # fmt: skip
    breaker, _, events = make(config)
    await succeed(breaker, 1, duration=0.1)
    await succeed(breaker, 3, duration=1.5)
    assert (await breaker.snapshot()).state is State.CLOSED
    await succeed(breaker, 1, duration=2.0)  # 4 slow of 5 = 80%
    assert (await breaker.snapshot()).state is State.OPEN
    assert "slow-call rate" in events.transitions[-1][2]


async def test_a_slow_trial_counts_as_failed() -> None:
    config = BreakerConfig(failure_threshold=1, slow_call_duration_s=1.0, half_open_max_calls=1)
    breaker, clock, _ = make(config)
    await fail(breaker)
    clock.advance(60)
    await succeed(breaker, duration=1.5)
    assert (await breaker.snapshot()).state is State.OPEN


async def test_operators_force_open_disable_and_reset() -> None:
    breaker, clock, events = make()
    await breaker.force_open()
    clock.advance(10_000)
    with pytest.raises(CircuitOpenError) as raised:
        await breaker.acquire()
    assert raised.value.retry_after_s is None
    await breaker.disable()
    await fail(breaker, 50)  # not counted while disabled
    assert (await breaker.snapshot()).state is State.DISABLED
    await breaker.reset()
    await fail(breaker, 4)
    assert (await breaker.snapshot()).state is State.CLOSED
    assert events.states == [State.FORCED_OPEN, State.DISABLED, State.CLOSED]


def test_open_duration_growth_is_capped() -> None:
    config = BreakerConfig(reset_timeout_s=60, reset_backoff_multiplier=3, max_reset_timeout_s=500)
    assert [config.open_duration(n) for n in (1, 2, 3, 4)] == [60, 180, 500, 500]
    assert BreakerConfig(reset_backoff_multiplier=1).open_duration(9) == 60
    assert config.open_duration(10_000) == 500  # no float overflow after many re-trips


@pytest.mark.parametrize("bad", [{"half_open_max_calls": 0}, {"reset_backoff_multiplier": 0.5},
                                 {"failure_rate_threshold": 1.5}])  # fmt: skip
def test_config_is_validated(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        BreakerConfig(**bad)  # type: ignore[arg-type]


def test_window_edges() -> None:
    window = SlidingWindow(window_s=10, buckets=5)  # 2 s buckets
    window.record(0.0, failure=True, slow=False)
    window.record(1.9, failure=False, slow=True)
    assert window.totals(9.9).calls == 2  # bucket [0,2) still inside (8,10]? 9.9 -> index 4
    assert window.totals(10.0).calls == 0  # index 5 evicts slot 0
    window.record(10.5, failure=True, slow=True)
    totals = window.totals(11.0)
    assert (totals.calls, totals.failures, totals.slow) == (1, 1, 1)
    assert totals.failure_rate == 1.0
    assert window.totals(1000.0).calls == 0  # a long silence clears everything
    assert window.totals(1000.0).failure_rate == 0.0


def test_admission_is_plain_data() -> None:
    assert Admission(State.CLOSED, 0, False).trial is False
