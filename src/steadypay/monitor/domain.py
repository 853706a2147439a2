"""The monitor's domain: component results, rounds, and the decision state machine.

Plain Python (no I/O), so the rules that decide a failover are unit-tested in microseconds.

The state machine (``threshold`` = N failed rounds, ``recovery`` = M healthy rounds)::

    HEALTHY   --failed round-->   FAILING (failures=1)
    FAILING   --failed round-->   failures+1, successes=0; at failures >= N: wants failover
    FAILING   --healthy round-->  successes+1; at successes >= M: HEALTHY (both counts 0)
                                  else still FAILING ("recovering"), failures unchanged
    a failover that was acted on consumes the failures (failures=0): another needs N more.

So one healthy round in a flapping system (fail, ok, fail, ok, fail) does not reset the count:
with N=3, M=2 that sequence triggers on its third failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    """A component's status, in the vocabulary of the IETF health-check draft."""

    PASS = "pass"  # noqa: S105 (not a password)
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class ComponentResult:
    component: str
    status: Status
    latency_s: float
    detail: str | None = None
    observed: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "status": self.status.value,
            "latency_ms": round(self.latency_s * 1000, 2),
        }
        if self.detail:
            body["detail"] = self.detail
        if self.observed:
            body["observed"] = self.observed
        return body


def round_healthy(results: list[ComponentResult]) -> bool:
    """A round is healthy when no component failed; ``warn`` (a non-critical dependency down,
    a canary held for review) is recorded but does not fail the round."""
    return all(r.status is not Status.FAIL for r in results)


class Role(StrEnum):
    LEADER = "leader"
    FOLLOWER = "follower"


class Decision(StrEnum):
    HEALTHY = "healthy"
    FAILING = "failing"  # failed, below the threshold
    RECOVERING = "recovering"  # healthy, but not yet M in a row after failures
    RECOVERED = "recovered"  # M healthy rounds in a row: the failure count is reset
    FAILOVER_TRIGGERED = "failover_triggered"
    FAILOVER_SUPPRESSED = "failover_suppressed"  # an earlier failover is unacked, in cool-down
    FAILOVER_DEFERRED = "failover_deferred"  # a follower's view: the leader acts


@dataclass(frozen=True, slots=True)
class Verdict:
    decision: Decision
    wants_failover: bool
    consecutive_failures: int
    consecutive_successes: int


@dataclass(slots=True)
class DecisionMachine:
    """Counts rounds and says when a failover is wanted (module docstring)."""

    threshold: int = 3
    recovery: int = 2
    failures: int = 0
    successes: int = 0

    def __post_init__(self) -> None:
        if self.threshold < 1 or self.recovery < 1:
            raise ValueError("threshold and recovery must be at least 1")

    def observe(self, healthy: bool) -> Verdict:
        if healthy:
            if self.failures == 0:
                decision = Decision.HEALTHY
            else:
                self.successes += 1
                if self.successes >= self.recovery:
                    self.failures = self.successes = 0
                    decision = Decision.RECOVERED
                else:
                    decision = Decision.RECOVERING
            return self._verdict(decision, wants=False)
        self.failures += 1
        self.successes = 0
        wants = self.failures >= self.threshold
        return self._verdict(Decision.FAILING, wants=wants)

    def failover_done(self) -> None:
        """A failover was acted on: it consumed the failures that caused it."""
        self.failures = 0
        self.successes = 0

    def _verdict(self, decision: Decision, *, wants: bool) -> Verdict:
        return Verdict(decision, wants, self.failures, self.successes)


def failure_reason(results: list[ComponentResult]) -> str:
    """A one-line summary of what failed (or warned) in a round."""
    bad = [r for r in results if r.status is not Status.PASS]
    if not bad:
        return "all checks passed"
    return "; ".join(
        f"{r.component} {r.status.value}" + (f": {r.detail}" if r.detail else "") for r in bad
    )
