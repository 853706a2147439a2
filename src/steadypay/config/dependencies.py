"""Outbound dependencies: one :class:`DependencySettings` per service steadypay calls, and
:class:`DependenciesSettings`, the part of :class:`~steadypay.config.Settings` that holds them
and the shared circuit-breaker store.

The conversion to a resilience pipeline is :func:`steadypay.resilience.settings.pipeline_config`:
configuration knows nothing of the resilience package.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from steadypay.config.contexts import ContextSettings


class DependencySettings(BaseModel):
    """One outbound dependency and its resilience pipeline. Set as JSON in
    ``STEADYPAY_DEPENDENCIES`` or field by field, e.g. ``STEADYPAY_DEPENDENCIES__FRAUD__URL``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = Field(
        default=None, description="Required, except to tune fraud/notifications' defaults."
    )
    critical: bool = Field(
        default=False, description="An open circuit makes /health/ready 503 (else: warn)."
    )
    total_timeout_s: float = Field(default=1.0, gt=0)
    attempt_timeout_s: float = Field(default=0.5, gt=0)
    max_retries: int = Field(default=2, ge=0, description="The seed's max_retries.")
    backoff_base_s: float = Field(default=0.05, ge=0)
    backoff_cap_s: float = Field(default=1.0, ge=0)
    bulkhead_max_concurrent: int = Field(default=64, ge=1)
    bulkhead_max_wait_s: float = Field(default=0.05, ge=0)
    retry_budget_capacity: float = Field(default=500, gt=0)
    failure_threshold: int = Field(default=5, ge=0)
    failure_rate_threshold: float = Field(default=0.5, ge=0, le=1)
    slow_call_rate_threshold: float = Field(default=1.0, ge=0, le=1)
    slow_call_duration_s: float = Field(default=5.0, gt=0)
    window_s: float = Field(default=60.0, gt=0)
    minimum_calls: int = Field(default=20, ge=1)
    reset_timeout_s: float = Field(default=60.0, gt=0)
    reset_backoff_multiplier: float = Field(default=2.0, ge=1)
    max_reset_timeout_s: float = Field(default=300.0, gt=0)
    half_open_max_calls: int = Field(default=3, ge=1)
    half_open_timeout_s: float = Field(default=10.0, gt=0)


class DependenciesSettings(ContextSettings):
    """Outbound services (``STEADYPAY_DEPENDENCIES``) and the Redis store that shares their
    circuit breakers (``STEADYPAY_REDIS_*``, ``STEADYPAY_BREAKER_STORE_*``)."""

    dependencies: dict[str, DependencySettings] = Field(
        default_factory=dict, description="Outbound services, each behind its own pipeline."
    )
    redis_url: SecretStr | None = Field(
        default=None, description="Shares circuit-breaker state between workers and hosts."
    )
    redis_timeout_ms: int = Field(default=50, gt=0)
    breaker_store_cooldown_s: float = Field(
        default=5.0, gt=0, description="After Redis fails, use local state this long."
    )

    def merged_dependencies(
        self, defaults: Mapping[str, DependencySettings]
    ) -> dict[str, DependencySettings]:
        """``defaults`` with :attr:`dependencies` applied: for a dependency with a default only
        the fields set explicitly replace the default's; any other needs a ``url``."""
        merged = dict(defaults)
        for name, override in self.dependencies.items():
            base = defaults.get(name)
            if base is None:
                if override.url is None:
                    raise ValueError(f"dependency {name!r} needs a url")
                merged[name] = override
            else:  # only the fields set explicitly replace the defaults
                explicit = {f: getattr(override, f) for f in override.model_fields_set}
                merged[name] = base.model_copy(update=explicit)
        return merged
