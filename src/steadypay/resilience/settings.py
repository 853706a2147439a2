"""From configuration to pipelines: :func:`pipeline_config` turns one dependency's
:class:`~steadypay.config.DependencySettings` into the :class:`PipelineConfig` its pipeline is
built from (configuration knows nothing of resilience; resilience reads configuration)."""

from __future__ import annotations

from steadypay.config import DependencySettings
from steadypay.resilience.pipeline import PipelineConfig
from steadypay.resilience.store import BreakerConfig


def pipeline_config(dependency: DependencySettings) -> PipelineConfig:
    """The pipeline of ``dependency``: ``max_retries`` retries are ``max_retries + 1``
    attempts; every other setting maps one to one."""
    return PipelineConfig(
        total_timeout_s=dependency.total_timeout_s,
        attempt_timeout_s=dependency.attempt_timeout_s,
        max_attempts=dependency.max_retries + 1,
        backoff_base_s=dependency.backoff_base_s,
        backoff_cap_s=dependency.backoff_cap_s,
        bulkhead_max_concurrent=dependency.bulkhead_max_concurrent,
        bulkhead_max_wait_s=dependency.bulkhead_max_wait_s,
        budget_capacity=dependency.retry_budget_capacity,
        breaker=BreakerConfig(
            failure_threshold=dependency.failure_threshold,
            failure_rate_threshold=dependency.failure_rate_threshold,
            slow_call_rate_threshold=dependency.slow_call_rate_threshold,
            slow_call_duration_s=dependency.slow_call_duration_s,
            window_s=dependency.window_s,
            minimum_calls=dependency.minimum_calls,
            reset_timeout_s=dependency.reset_timeout_s,
            reset_backoff_multiplier=dependency.reset_backoff_multiplier,
            max_reset_timeout_s=dependency.max_reset_timeout_s,
            half_open_max_calls=dependency.half_open_max_calls,
            half_open_timeout_s=dependency.half_open_timeout_s,
        ),
    )
