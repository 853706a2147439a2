"""Backoff (capped exponential, with or without full jitter), Retry-After, and a retry budget
per dependency.

The budget is a token bucket in the manner of the AWS SDKs' standard retry quota: it starts full;
a retry costs ``retry_cost`` tokens (``timeout_cost`` after a timeout); a call that succeeds
first time returns one token, and one that succeeded after retrying returns what its retries
cost. When a dependency fails every call, the bucket drains after ``capacity / retry_cost``
retries and from then on calls get no retries at all: retries cannot multiply load on a
dependency that is down.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

POLL_BACKOFF_CAP_S = 30.0
"""The longest a polling loop waits after failed rounds (see :func:`poll_backoff_s`)."""
POLL_BACKOFF_MAX_DOUBLINGS = 6
"""How many times a polling loop's interval doubles at most after failed rounds."""


def exponential_s(attempt: int, base_s: float, cap_s: float) -> float:
    """``min(cap, base * 2^attempt)``: the capped exponential behind every backoff here.

    ``attempt`` counts doublings (0: ``base_s``). Where ``2^attempt`` is beyond a float (a very
    long outage), the answer is the cap: a positive base passed it long before. Deterministic;
    :func:`full_jitter` randomises it."""
    try:
        grown = base_s * 2.0**attempt
    except OverflowError:
        grown = math.inf if base_s > 0 else 0.0
    return min(cap_s, grown)


def full_jitter(attempt: int, base_s: float, cap_s: float, rng: Callable[[], float]) -> float:
    """``random(0, min(cap, base * 2^attempt))`` for the ``attempt``-th retry (0-based)."""
    return rng() * exponential_s(attempt, base_s, cap_s)


def retry_delay_s(attempts: int, base_s: float, cap_s: float, rng: Callable[[], float]) -> float:
    """Full-jitter backoff after the ``attempts``-th failed attempt (1-based)."""
    return full_jitter(max(attempts - 1, 0), base_s, cap_s, rng)


def poll_backoff_s(failures: int, interval_s: float) -> float:
    """How long a polling loop (the outbox relay's, the webhook worker's) sleeps after
    ``failures`` consecutive failed rounds: its ``interval_s`` doubled once per failure, at
    most :data:`POLL_BACKOFF_MAX_DOUBLINGS` times and at most :data:`POLL_BACKOFF_CAP_S`
    (interval 1 s: 2, 4, 8, 16, 30, 30 ...). Deterministic: no jitter."""
    doublings = min(failures, POLL_BACKOFF_MAX_DOUBLINGS)
    return exponential_s(doublings, interval_s, POLL_BACKOFF_CAP_S)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class RetryBudget:
    def __init__(
        self,
        capacity: float = 500,
        retry_cost: float = 5,
        timeout_cost: float = 10,
        success_refund: float = 1,
    ) -> None:
        if capacity <= 0 or retry_cost <= 0 or timeout_cost <= 0 or success_refund < 0:
            raise ValueError("retry budget amounts must be positive")
        self.capacity = capacity
        self.retry_cost = retry_cost
        self.timeout_cost = timeout_cost
        self.success_refund = success_refund
        self._tokens = capacity

    @property
    def tokens(self) -> float:
        return self._tokens

    def try_spend(self, *, after_timeout: bool) -> float | None:
        """Take the cost of one retry; None (no retry) if the bucket cannot pay for it."""
        cost = self.timeout_cost if after_timeout else self.retry_cost
        if self._tokens < cost:
            return None
        self._tokens -= cost
        return cost

    def on_success(self, spent: float) -> None:
        """A call succeeded: refund what its retries cost, or one token if it needed none."""
        self._tokens = min(self.capacity, self._tokens + (spent or self.success_refund))


def seconds_header(seconds: float) -> str:
    return str(max(0, math.floor(seconds * 1000)))
