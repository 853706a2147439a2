"""What counts against a breaker (issue 14, finding 2): the dependency's trouble, never one
caller's input. A breaker is shared by every user (and through Redis by every worker), so
whatever one caller can cause at will must not move it."""

from __future__ import annotations

import pytest

from steadypay.errors import (
    CircuitOpenError,
    DatabaseUnavailable,
    DependencyFailure,
    DependencyTimeout,
    IdempotencyKeyReuse,
    NotFound,
    ValidationError,
)
from steadypay.resilience.pipeline import Attempt, Pipeline, PipelineConfig, is_failure
from steadypay.resilience.store import BreakerConfig, State
from tests.fakes import FakeClock


@pytest.mark.parametrize(
    ("error", "counted"),
    [
        (DependencyTimeout(), True),
        (DependencyFailure("connection refused"), True),
        (DependencyFailure(status_code=500), True),
        (DependencyFailure(status_code=503), True),
        (DependencyFailure(status_code=401), True),  # our service key refused: everyone fails
        (DependencyFailure(status_code=403), True),
        (DependencyFailure(status_code=400), False),
        (DependencyFailure(status_code=404), False),
        (DependencyFailure(status_code=422), False),
        (DependencyFailure(status_code=429), False),
        (ValidationError("bad url", param="url"), False),  # a caller's error, mapped
        (NotFound(), False),
        (IdempotencyKeyReuse(), False),
        (DatabaseUnavailable(), True),
        (CircuitOpenError(), False),
        (RuntimeError("a bug"), True),
    ],
)
def test_only_the_dependencys_trouble_counts(error: Exception, counted: bool) -> None:
    assert is_failure(error) is counted


def pipeline(threshold: int = 2) -> Pipeline:
    config = PipelineConfig(max_attempts=3, breaker=BreakerConfig(failure_threshold=threshold))
    return Pipeline("dep", config, clock=FakeClock(), rng=lambda: 0.0)


async def test_many_caller_errors_leave_the_breaker_closed_and_are_not_retried() -> None:
    shared = pipeline()
    attempts = 0

    async def refused(_: Attempt) -> None:
        nonlocal attempts
        attempts += 1
        raise ValidationError("url must not contain control characters", param="url")

    for _ in range(20):
        with pytest.raises(ValidationError):
            await shared.call(refused, idempotent=True)
    assert attempts == 20  # one attempt each
    assert (await shared.breaker.snapshot()).state is State.CLOSED


async def test_a_refusal_of_our_credentials_opens_the_breaker_without_retries() -> None:
    shared = pipeline()
    attempts = 0

    async def unauthorized(_: Attempt) -> None:
        nonlocal attempts
        attempts += 1
        raise DependencyFailure(status_code=401)

    for _ in range(2):
        with pytest.raises(DependencyFailure):
            await shared.call(unauthorized, idempotent=True)
    assert attempts == 2
    assert (await shared.breaker.snapshot()).state is State.OPEN
    with pytest.raises(CircuitOpenError):
        await shared.call(unauthorized, idempotent=True)
