"""Retries, budget, deadline and bulkhead in the pipeline, on a fake clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from steadypay.errors import (
    BulkheadFullError,
    CircuitOpenError,
    DependencyFailure,
    DependencyTimeout,
)
from steadypay.resilience.pipeline import Attempt, Pipeline, PipelineConfig
from steadypay.resilience.retry import RetryBudget, full_jitter, parse_retry_after
from steadypay.resilience.store import BreakerConfig, State
from tests.fakes import FakeClock, RecordingEvents

LENIENT = BreakerConfig(failure_threshold=0, failure_rate_threshold=0, slow_call_rate_threshold=0)


def make(
    rng: float = 0.5, breaker: BreakerConfig = LENIENT, **config: float
) -> tuple[Pipeline, FakeClock, RecordingEvents]:
    clock, events = FakeClock(), RecordingEvents()
    settings = {"total_timeout_s": 10.0, "attempt_timeout_s": 1.0, "max_attempts": 3,
                "backoff_base_s": 0.1, "backoff_cap_s": 1.0} | config  # fmt: skip
    pipeline = Pipeline(
        "dep",
        PipelineConfig(breaker=breaker, **settings),  # type: ignore[arg-type]
        clock=clock,
        events=events,
        rng=lambda: rng,
    )
    return pipeline, clock, events


class Dependency:
    """Fails the first ``failures`` attempts with ``error``, then answers "ok"."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or DependencyFailure(status_code=503)
        self.attempts: list[Attempt] = []

    async def __call__(self, attempt: Attempt) -> str:
        self.attempts.append(attempt)
        if len(self.attempts) <= self.failures:
            raise self.error
        return "ok"


async def test_retries_until_success_with_full_jitter() -> None:
    pipeline, clock, events = make(rng=0.5)
    dependency = Dependency(failures=2)
    assert await pipeline.call(dependency, idempotent=True) == "ok"
    assert len(dependency.attempts) == 3
    assert clock.sleeps == [0.5 * 0.1, 0.5 * 0.2]  # random * min(cap, base * 2^n)
    assert events.calls.count("retry") == 2


async def test_no_sleep_after_the_last_attempt() -> None:
    pipeline, clock, _ = make()
    dependency = Dependency(failures=10)
    with pytest.raises(DependencyFailure):
        await pipeline.call(dependency, idempotent=True)
    assert len(dependency.attempts) == 3
    assert len(clock.sleeps) == 2


async def test_non_idempotent_calls_are_never_retried() -> None:
    pipeline, clock, _ = make()
    dependency = Dependency(failures=1)
    with pytest.raises(DependencyFailure):
        await pipeline.call(dependency, idempotent=False)
    assert len(dependency.attempts) == 1
    assert clock.sleeps == []


async def test_client_errors_are_not_retried_and_do_not_count() -> None:
    pipeline, _, _events = make(breaker=BreakerConfig(failure_threshold=1))
    dependency = Dependency(failures=1, error=DependencyFailure(status_code=400))
    with pytest.raises(DependencyFailure):
        await pipeline.call(dependency, idempotent=True)
    assert len(dependency.attempts) == 1
    assert (await pipeline.breaker.snapshot()).state is State.CLOSED


async def test_retry_after_is_honoured_when_longer_than_the_backoff() -> None:
    pipeline, clock, _ = make()
    slow_down = DependencyFailure(status_code=503, server_retry_after_s=2.0)
    dependency = Dependency(failures=1, error=slow_down)
    assert await pipeline.call(dependency, idempotent=True) == "ok"
    assert clock.sleeps == [2.0]


async def test_no_retry_whose_wait_outlives_the_deadline() -> None:
    pipeline, clock, _ = make(total_timeout_s=1.0)
    slow_down = DependencyFailure(status_code=503, server_retry_after_s=5.0)
    dependency = Dependency(failures=1, error=slow_down)
    with pytest.raises(DependencyFailure):
        await pipeline.call(dependency, idempotent=True)
    assert clock.sleeps == []


async def test_deadline_propagates_and_shrinks() -> None:
    pipeline, _clock, _ = make(total_timeout_s=2.0, attempt_timeout_s=1.5, rng=1.0,
                              backoff_base_s=0.5)  # fmt: skip
    dependency = Dependency(failures=2)
    await pipeline.call(dependency, idempotent=True)
    first, second, third = dependency.attempts
    assert first.timeout_s == 1.5
    assert second.timeout_s == pytest.approx(1.5)  # 2.0 - 0.5 slept
    assert third.timeout_s == pytest.approx(0.5)  # 2.0 - 0.5 - 1.0
    assert first.deadline is third.deadline


async def test_attempt_timeout_is_a_timeout_failure() -> None:
    pipeline, _, events = make(attempt_timeout_s=0.01, max_attempts=1)

    async def hangs(_: Attempt) -> str:
        await asyncio.sleep(5)
        return "never"

    with pytest.raises(DependencyTimeout):
        await pipeline.call(hangs, idempotent=True)
    assert events.calls == ["timeout"]


async def test_an_open_circuit_is_final_no_retry_no_sleep() -> None:
    pipeline, clock, events = make(breaker=BreakerConfig(failure_threshold=1))
    dependency = Dependency(failures=10)
    with pytest.raises(DependencyFailure):
        await pipeline.call(dependency, idempotent=True)
    assert len(dependency.attempts) == 1  # the breaker saw the first failure and opened
    assert clock.sleeps == []  # no backoff toward an attempt that would be rejected
    with pytest.raises(CircuitOpenError):
        await pipeline.call(dependency, idempotent=True)
    assert len(dependency.attempts) == 1
    assert clock.sleeps == []
    assert events.calls[-1] == "rejected_open"


async def test_every_attempt_counts_toward_the_breaker() -> None:
    """The seed counted a failure only after all retries; we count each attempt."""
    pipeline, _, _ = make(breaker=BreakerConfig(failure_threshold=3), max_attempts=3)
    with pytest.raises(DependencyFailure):
        await pipeline.call(Dependency(failures=10), idempotent=True)
    assert (await pipeline.breaker.snapshot()).state is State.OPEN


async def test_budget_exhaustion_stops_retries() -> None:
    pipeline, _, events = make(budget_capacity=10, budget_retry_cost=5)
    dependency = Dependency(failures=1000)
    for _ in range(5):
        with pytest.raises(DependencyFailure):
            await pipeline.call(dependency, idempotent=True)
    # 5 calls: 3 + 1 (+1 retry, budget 0) + 1 + 1 + 1 attempts
    assert len(dependency.attempts) == 7
    assert pipeline.budget.tokens == 0
    assert events.calls.count("retry") == 2


def test_budget_refunds() -> None:
    budget = RetryBudget(capacity=20, retry_cost=5, timeout_cost=10, success_refund=1)
    assert budget.try_spend(after_timeout=True) == 10
    assert budget.try_spend(after_timeout=False) == 5
    assert budget.try_spend(after_timeout=True) is None
    budget.on_success(spent=5)
    assert budget.tokens == 10
    budget.on_success(spent=0)
    assert budget.tokens == 11
    for _ in range(100):
        budget.on_success(spent=0)
    assert budget.tokens == 20


@pytest.mark.parametrize("attempt", range(8))
@pytest.mark.parametrize("r", [0.0, 0.25, 0.999999])
def test_jitter_bounds(attempt: int, r: float) -> None:
    wait = full_jitter(attempt, base_s=0.1, cap_s=1.0, rng=lambda: r)
    assert 0 <= wait < min(1.0, 0.1 * 2**attempt) or (r == 0 and wait == 0)


def test_parse_retry_after() -> None:
    now = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Tue, 24 Nov 2026 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Tue, 24 Nov 2026 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


async def test_bulkhead_rejects_fast_when_full() -> None:
    pipeline, _, events = make(bulkhead_max_concurrent=2, bulkhead_max_wait_s=0.0)
    release = asyncio.Event()

    async def slow(_: Attempt) -> str:
        await release.wait()
        return "ok"

    running = [asyncio.create_task(pipeline.call(slow, idempotent=True)) for _ in range(2)]
    await asyncio.sleep(0)
    with pytest.raises(BulkheadFullError):
        await pipeline.call(slow, idempotent=True)
    assert events.calls == ["rejected_bulkhead"]
    release.set()
    assert await asyncio.gather(*running) == ["ok", "ok"]
    assert pipeline.bulkhead.in_flight == 0


async def test_bulkhead_bounded_wait_then_slot() -> None:
    pipeline, _, _ = make(bulkhead_max_concurrent=1, bulkhead_max_wait_s=1.0)
    gate = asyncio.Event()

    async def first(_: Attempt) -> str:
        await gate.wait()
        return "first"

    task = asyncio.create_task(pipeline.call(first, idempotent=True))
    await asyncio.sleep(0)

    async def second(_: Attempt) -> str:
        return "second"

    waiting = asyncio.create_task(pipeline.call(second, idempotent=True))
    await asyncio.sleep(0)
    gate.set()
    assert await task == "first"
    assert await waiting == "second"
