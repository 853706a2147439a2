"""What the resilience toolkit reports: structured log lines and Prometheus metrics."""

from __future__ import annotations

from typing import Protocol

import structlog
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from steadypay.resilience.store import State

log = structlog.get_logger("steadypay.resilience")

OUTCOMES = ("success", "failure", "timeout", "rejected_open", "rejected_bulkhead", "retry")


class Events(Protocol):
    def transition(self, dependency: str, old: State, new: State, reason: str) -> None: ...

    def call(self, dependency: str, outcome: str, duration_s: float | None = None) -> None: ...

    def budget(self, dependency: str, tokens: float) -> None: ...

    def store_fallback(self, dependency: str, reason: str) -> None: ...


class Metrics:
    """The toolkit's Prometheus metrics, on one registry (the process default unless given)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = registry if registry is not None else REGISTRY
        self.state = Gauge(
            "steadypay_circuit_breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open",
            ["dependency"],
            registry=registry,
            multiprocess_mode="livemax",  # with several workers: the worst state seen
        )
        self.calls = Counter(
            "steadypay_dependency_calls_total",
            "Outbound call outcomes: " + ", ".join(OUTCOMES),
            ["dependency", "outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "steadypay_dependency_call_duration_seconds",
            "Duration of outbound call attempts",
            ["dependency"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        self.budget = Gauge(
            "steadypay_retry_budget_tokens",
            "Tokens left in the dependency's retry budget",
            ["dependency"],
            registry=registry,
            multiprocess_mode="livemin",  # with several workers: the emptiest bucket
        )
        self.store_fallback = Counter(
            "steadypay_circuit_breaker_store_fallback_total",
            "Times the shared (Redis) breaker state was unreachable and the local state was used",
            ["dependency"],
            registry=registry,
        )


_default: Metrics | None = None


def default_metrics() -> Metrics:
    """The metrics on the process-wide registry, created on first use (not at import)."""
    global _default
    if _default is None:
        _default = Metrics()
    return _default


class ObservedEvents:
    """Events to logs and metrics. ``metrics`` defaults to the process-wide registry."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self._metrics = metrics or default_metrics()

    def transition(self, dependency: str, old: State, new: State, reason: str) -> None:
        self._metrics.state.labels(dependency).set(new.gauge)
        level = log.warning if new in (State.OPEN, State.FORCED_OPEN) else log.info
        level(
            "circuit_breaker_transition",
            dependency=dependency,
            old=old.name.lower(),
            new=new.name.lower(),
            reason=reason,
        )

    def call(self, dependency: str, outcome: str, duration_s: float | None = None) -> None:
        self._metrics.calls.labels(dependency, outcome).inc()
        if duration_s is not None:
            self._metrics.duration.labels(dependency).observe(duration_s)

    def budget(self, dependency: str, tokens: float) -> None:
        self._metrics.budget.labels(dependency).set(tokens)

    def store_fallback(self, dependency: str, reason: str) -> None:
        self._metrics.store_fallback.labels(dependency).inc()
        log.warning("circuit_breaker_store_fallback", dependency=dependency, reason=reason)
