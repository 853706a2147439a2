"""Fault tolerance around every outbound call: circuit breakers, retries under a budget,
deadlines and bulkheads, composed into one pipeline per dependency (see ``pipeline.py``).

- :mod:`~steadypay.resilience.clock` — time, injectable (:class:`Clock`, :data:`SYSTEM_CLOCK`).
- :mod:`~steadypay.resilience.deadline` — an absolute deadline shared by every attempt of a call.
- :mod:`~steadypay.resilience.retry` — backoff, Retry-After and a retry budget per dependency.
- :mod:`~steadypay.resilience.window` — a time-based sliding window of call outcomes.
- :mod:`~steadypay.resilience.store` — where a breaker's state lives, and the rules that move it.
- :mod:`~steadypay.resilience.breaker` — the circuit breaker.
- :mod:`~steadypay.resilience.bulkhead` — at most K calls in flight to a dependency (used by
  the pipeline only).
- :mod:`~steadypay.resilience.events` — what the toolkit reports: log lines and metrics.
- :mod:`~steadypay.resilience.pipeline` — the pipeline: deadline, bulkhead, breaker, retries.
- :mod:`~steadypay.resilience.client` — :class:`ReliableServiceClient`, HTTP through a pipeline.
- :mod:`~steadypay.resilience.registry` — every configured dependency's client and pipeline.
- :mod:`~steadypay.resilience.settings` — from configuration to :class:`PipelineConfig`.
- :mod:`~steadypay.resilience.health` — readiness probes of the dependencies' circuits.
- :mod:`~steadypay.resilience.redis_store` — breaker state shared in Redis.

Offered to other packages: the names below. The Redis store is not imported here, to keep this
package light: import ``RedisStore``, ``redis_client`` and ``KEY_PREFIX`` from
:mod:`steadypay.resilience.redis_store`.
"""

from steadypay.resilience.breaker import CircuitBreaker
from steadypay.resilience.client import ReliableServiceClient, ServiceResponse
from steadypay.resilience.clock import SYSTEM_CLOCK, Clock, SystemClock
from steadypay.resilience.deadline import DEADLINE_HEADER, Deadline
from steadypay.resilience.events import Events, Metrics, ObservedEvents, default_metrics
from steadypay.resilience.health import circuit_probes
from steadypay.resilience.pipeline import Attempt, Pipeline, PipelineConfig
from steadypay.resilience.registry import Dependencies
from steadypay.resilience.retry import (
    RetryBudget,
    exponential_s,
    full_jitter,
    parse_retry_after,
    poll_backoff_s,
    retry_delay_s,
)
from steadypay.resilience.settings import pipeline_config
from steadypay.resilience.store import (
    Admission,
    BreakerConfig,
    BreakerStore,
    LocalStore,
    Rejection,
    Snapshot,
    State,
)
from steadypay.resilience.window import SlidingWindow

__all__ = [
    "DEADLINE_HEADER",
    "SYSTEM_CLOCK",
    "Admission",
    "Attempt",
    "BreakerConfig",
    "BreakerStore",
    "CircuitBreaker",
    "Clock",
    "Deadline",
    "Dependencies",
    "Events",
    "LocalStore",
    "Metrics",
    "ObservedEvents",
    "Pipeline",
    "PipelineConfig",
    "Rejection",
    "ReliableServiceClient",
    "RetryBudget",
    "ServiceResponse",
    "SlidingWindow",
    "Snapshot",
    "State",
    "SystemClock",
    "circuit_probes",
    "default_metrics",
    "exponential_s",
    "full_jitter",
    "parse_retry_after",
    "pipeline_config",
    "poll_backoff_s",
    "retry_delay_s",
]
