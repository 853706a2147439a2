"""Configuration: the one place that reads the environment.

Every setting has the prefix ``STEADYPAY_`` (``STEADYPAY_DATABASE_URL``, ...).
Nothing else in steadypay calls ``os.environ`` for configuration; the composition root
(:mod:`steadypay.bootstrap`) builds everything from one :class:`Settings` instance.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from steadypay.fraud.rules import FraudRules
from steadypay.observability.slo import LATENCY_BOUNDS_MS
from steadypay.resilience.pipeline import PipelineConfig
from steadypay.resilience.store import BreakerConfig


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


MIN_ADMIN_KEY_LENGTH = 32


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

    def pipeline_config(self) -> PipelineConfig:
        return PipelineConfig(
            total_timeout_s=self.total_timeout_s,
            attempt_timeout_s=self.attempt_timeout_s,
            max_attempts=self.max_retries + 1,
            backoff_base_s=self.backoff_base_s,
            backoff_cap_s=self.backoff_cap_s,
            bulkhead_max_concurrent=self.bulkhead_max_concurrent,
            bulkhead_max_wait_s=self.bulkhead_max_wait_s,
            budget_capacity=self.retry_budget_capacity,
            breaker=BreakerConfig(
                failure_threshold=self.failure_threshold,
                failure_rate_threshold=self.failure_rate_threshold,
                slow_call_rate_threshold=self.slow_call_rate_threshold,
                slow_call_duration_s=self.slow_call_duration_s,
                window_s=self.window_s,
                minimum_calls=self.minimum_calls,
                reset_timeout_s=self.reset_timeout_s,
                reset_backoff_multiplier=self.reset_backoff_multiplier,
                max_reset_timeout_s=self.max_reset_timeout_s,
                half_open_max_calls=self.half_open_max_calls,
                half_open_timeout_s=self.half_open_timeout_s,
            ),
        )


class Settings(BaseSettings):
    """steadypay's configuration, read from ``STEADYPAY_*`` environment variables."""

    model_config = SettingsConfigDict(
        env_prefix="STEADYPAY_", env_nested_delimiter="__", extra="ignore", frozen=True
    )

    env: Environment = Environment.DEVELOPMENT

    # --- database -------------------------------------------------------------------------
    database_url: SecretStr | None = Field(
        default=None,
        description="PostgreSQL URL. Unset: `steadypay up` starts an embedded cluster in data_dir.",
    )
    data_dir: Path = Field(default=Path(".steadypay"), description="Embedded cluster, admin key.")
    pg_bin_dir: Path | None = Field(
        default=None,
        description="PostgreSQL binaries for the embedded cluster (default: pgserver).",
    )
    db_pool_min_size: int = Field(default=2, ge=0)
    db_pool_max_size: int = Field(default=20, ge=1)
    db_connect_timeout_s: float = Field(default=5.0, gt=0)
    db_acquire_timeout_s: float = Field(default=5.0, gt=0, description="Wait for a pool slot.")
    db_statement_timeout_ms: int = Field(default=10_000, gt=0)
    db_lock_timeout_ms: int = Field(
        default=5_000,
        gt=0,
        description="Longest wait for a row lock; also how long a duplicate request waits for "
        "the first one with its Idempotency-Key before 409 idempotency_key_in_use.",
    )

    # --- ledger ---------------------------------------------------------------------------
    ledger_max_attempts: int = Field(
        default=8, ge=1, description="Attempts on deadlock/serialization failure before 503."
    )
    ledger_max_concurrent_transactions: int = Field(
        default=8,
        ge=1,
        description="Write transactions in flight per worker process. Fewer (1-2) make larger "
        "group-commit batches: more throughput under load and for hot accounts, higher latency "
        "at moderate load (docs/performance.md).",
    )
    ledger_group_commit: bool = Field(
        default=True, description="Concurrent transfers of a worker share one transaction."
    )
    ledger_group_commit_max_batch: int = Field(
        default=512, ge=1, le=10_000, description="Most requests in one group-commit batch."
    )
    ledger_retry_base_s: float = Field(default=0.005, gt=0)
    ledger_retry_cap_s: float = Field(default=0.25, gt=0)

    # --- idempotency ----------------------------------------------------------------------
    idempotency_ttl_hours: float = Field(default=24.0, ge=24.0)
    idempotency_purge_interval_s: float = Field(default=300.0, gt=0)

    # --- risk and holds ----------------------------------------------------------------------
    risk_review_above_score: int = Field(default=80, ge=0, le=100)
    risk_deadline_ms: int = Field(default=300, gt=0, description="Total time to ask fraud.")
    risk_fallback_amount_limit: int = Field(default=10_000, gt=0, description="Major units.")
    risk_fallback_daily_limit: int = Field(default=50_000, gt=0, description="Major units.")
    hold_ttl_hours: float = Field(default=72.0, gt=0, description="A review hold's lifetime.")
    hold_expiry_interval_s: float = Field(default=30.0, gt=0)
    fraud_url: str = Field(default="http://127.0.0.1:8001", description="The fraud service.")
    fraud_rules: FraudRules = Field(
        default_factory=FraudRules,
        description="The fraud service's rules (JSON in STEADYPAY_FRAUD_RULES).",
    )
    notification_url: str = Field(
        default="http://127.0.0.1:8002", description="The notification service."
    )

    # --- outbox relay and webhooks ----------------------------------------------------------
    outbox_batch_size: int = Field(default=100, ge=1)
    outbox_delivery_batch_size: int = Field(
        default=100,
        ge=1,
        le=1000,
        description="Events per POST to the notification service's /events/batch (1: one "
        "POST per event to /events).",
    )
    outbox_lease_s: float = Field(default=30.0, gt=0)
    outbox_max_age_hours: float = Field(default=72.0, gt=0, description="Then dead-lettered.")
    outbox_backoff_base_s: float = Field(default=1.0, gt=0)
    outbox_backoff_cap_s: float = Field(default=600.0, gt=0)
    webhook_max_age_hours: float = Field(default=72.0, gt=0, description="Retry this long.")
    webhook_backoff_base_s: float = Field(default=5.0, gt=0)
    webhook_backoff_cap_s: float = Field(default=3600.0, gt=0)
    webhook_timeout_s: float = Field(default=5.0, gt=0)
    webhook_rotation_window_hours: float = Field(default=24.0, gt=0)

    # --- outbound dependencies ------------------------------------------------------------
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

    # --- SLO: per-minute SLI rollups, error budgets (steadypay.observability.sli/slo) -------
    slo_objective: float = Field(
        default=0.999, gt=0, lt=1, description="Availability objective (0.999 = 99.9%)."
    )
    slo_latency_threshold_ms: int = Field(
        default=300,
        description="Latency SLI: share of requests at most this slow. One of the rollups' "
        "bucket bounds (steadypay.observability.slo.LATENCY_BOUNDS_MS).",
    )
    sli_request_timeout_ms: int = Field(
        default=5_000, gt=0, description="A request slower than this is a failure (timeout)."
    )
    sli_flush_interval_s: float = Field(
        default=10.0, gt=0, description="How often each worker upserts its rollups."
    )
    sli_max_pending_minutes: int = Field(
        default=60, ge=1, description="Rollup rows kept while the database is unreachable."
    )
    sli_service_prefix: str = Field(
        default="",
        max_length=20,
        description="Put before service names in the rollups (deployments sharing a database).",
    )

    @field_validator("slo_latency_threshold_ms")
    @classmethod
    def _latency_threshold_is_a_bound(cls, value: int) -> int:
        if value not in LATENCY_BOUNDS_MS:
            raise ValueError(f"must be one of the rollup bucket bounds {LATENCY_BOUNDS_MS}")
        return value

    # --- CloudWatch export (steadypay.observability.cloudwatch) ----------------------------
    cloudwatch_namespace: str | None = Field(
        default=None,
        max_length=255,
        description="Set (e.g. Steadypay/Reliability) to export ResponseTime and RequestCount "
        "to CloudWatch. Credentials and endpoint: boto3's standard chain (AWS_*).",
    )
    cloudwatch_region: str | None = Field(
        default=None, description="Unset: AWS_REGION, AWS_DEFAULT_REGION, profile, us-east-1."
    )
    cloudwatch_flush_interval_s: float = Field(
        default=60.0, gt=0, description="Aggregate this long, then send one batch."
    )
    cloudwatch_max_buffered_datums: int = Field(
        default=2_000, ge=1, description="Unsent datums kept; beyond it the oldest are dropped."
    )
    cloudwatch_timeout_s: float = Field(
        default=2.0, gt=0, description="Connect and read timeout of each PutMetricData attempt."
    )
    cloudwatch_shutdown_timeout_s: float = Field(
        default=5.0, gt=0, description="Longest wait for the final flush at shutdown."
    )

    # --- health endpoints and scrape-time gauges (steadypay.observability.health) ----------
    health_check_timeout_s: float = Field(
        default=1.0,
        gt=0,
        description="Time limit of each /health/ready check (they run at once) and of the "
        "database reads /metrics does before answering.",
    )
    health_backlog_warn: int = Field(
        default=1000, ge=0, description="Outbox events (or due webhooks) above which: warn."
    )
    health_backlog_age_warn_s: float = Field(
        default=300.0, gt=0, description="Oldest waiting event older than this: warn."
    )

    # --- health monitor (steadypay.monitor, `steadypay monitor`) ---------------------------
    monitor_api_url: str = Field(
        default="http://127.0.0.1:8000", description="The API the monitor checks."
    )
    monitor_interval_s: float = Field(default=30.0, gt=0, description="Start to start.")
    monitor_check_timeout_s: float = Field(
        default=10.0, gt=0, description="Each check's own time limit within a round."
    )
    monitor_failure_threshold: int = Field(
        default=3, ge=1, description="Consecutive failed rounds that trigger a failover."
    )
    monitor_recovery_threshold: int = Field(
        default=2, ge=1, description="Consecutive healthy rounds that reset the failure count."
    )
    monitor_failover_command: str | None = Field(
        default=None, description="Run by /bin/sh -c on failover (reason in STEADYPAY_FAILOVER_*)."
    )
    monitor_failover_webhook: str | None = Field(
        default=None, description="POSTed a JSON description of the failover."
    )
    monitor_failover_timeout_s: float = Field(
        default=60.0, gt=0, description="Time limit of the failover command or webhook."
    )
    monitor_failover_cooldown_s: float = Field(
        default=900.0, ge=0, description="No new failover this long after one, unless acked."
    )
    monitor_retention_days: float = Field(default=7.0, gt=0, description="Rounds kept.")
    monitor_canary_currency: str = Field(default="USD", description="The canary's currency.")
    monitor_canary_amount_minor: int = Field(
        default=1, ge=1, description="Moved there and back each round (minor units)."
    )
    monitor_metrics_port: int | None = Field(
        default=None, ge=0, le=65535, description="Serve the monitor's /metrics on this port."
    )

    # --- chaos: in-process fault injection (steadypay.chaos.faults) -----------------------
    chaos_enabled: bool = Field(
        default=False, description="Inject faults from start (PUT /v1/admin/chaos at runtime)."
    )
    chaos_failure_rate: float = Field(
        default=0.01, ge=0.0, le=1.0, description="Share of calls failed at each hook."
    )
    chaos_latency_rate: float = Field(
        default=0.01, ge=0.0, le=1.0, description="Share of calls delayed at each hook."
    )
    chaos_latency_ms: tuple[int, int] = Field(
        default=(100, 2000), description="Injected latency range in ms, as min,max (JSON)."
    )
    chaos_seed: int | None = Field(default=None, description="Seed of the fault draws.")
    chaos_allow_in_production: bool = Field(
        default=False, description="Permit chaos when STEADYPAY_ENV=production."
    )

    # --- HTTP -----------------------------------------------------------------------------
    admin_key: SecretStr | None = Field(
        default=None, description="Admin bearer key. Unset: `up` generates one in data_dir."
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1)
    log_level: str = "info"
    log_json: bool | None = Field(
        default=None,
        description="JSON log lines (one object per line). Unset: JSON unless stderr is a "
        "terminal, so a laptop gets readable lines and a container gets JSON.",
    )

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.env is Environment.PRODUCTION:
            if self.database_url is None:
                raise ValueError("STEADYPAY_DATABASE_URL is required when STEADYPAY_ENV=production")
            key = self.admin_key.get_secret_value() if self.admin_key else ""
            if len(key) < MIN_ADMIN_KEY_LENGTH:
                raise ValueError(
                    "STEADYPAY_ADMIN_KEY must be set to a random secret of at least "
                    f"{MIN_ADMIN_KEY_LENGTH} characters when STEADYPAY_ENV=production"
                )
        if self.db_pool_min_size > self.db_pool_max_size:
            raise ValueError(
                "STEADYPAY_DB_POOL_MIN_SIZE must not exceed STEADYPAY_DB_POOL_MAX_SIZE"
            )
        self.dependency_settings()  # every dependency resolves to a URL, or fail at load time
        return self

    def dependency_settings(self) -> dict[str, DependencySettings]:
        """Configured dependencies, with the fraud and notification services by default: the
        fraud call is the seed's (max_retries=2) within the risk deadline; notifications are
        delivered by the outbox relay with one retry."""
        defaults = {
            "fraud": DependencySettings(
                url=self.fraud_url,
                total_timeout_s=self.risk_deadline_ms / 1000,
                attempt_timeout_s=self.risk_deadline_ms / 1000,
                max_retries=2,
                backoff_base_s=0.01,
                backoff_cap_s=0.05,
            ),
            "notifications": DependencySettings(
                url=self.notification_url,
                total_timeout_s=5.0,
                attempt_timeout_s=2.0,
                max_retries=1,
            ),
        }
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

    def require_database_url(self) -> str:
        if self.database_url is None:
            raise RuntimeError("no database URL configured (set STEADYPAY_DATABASE_URL)")
        return self.database_url.get_secret_value()
