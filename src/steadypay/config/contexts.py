"""The per-context settings models that :class:`~steadypay.config.Settings` is composed of.

Each model holds one concern's fields, named exactly as the environment variables are
(``db_pool_max_size`` is ``STEADYPAY_DB_POOL_MAX_SIZE``), with that concern's validators. A
consumer that needs one concern annotates its model (``def pool_options(settings:
DatabaseSettings)``) and is passed the whole :class:`~steadypay.config.Settings`, which is an
instance of every one of them. The models only declare and validate; reading the environment is
:class:`~steadypay.config.Settings`' job.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from enum import StrEnum
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from steadypay.config.fraud import FraudRules


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


MIN_ADMIN_KEY_LENGTH = 32

LATENCY_BOUNDS_MS: tuple[int, ...] = (
    5, 10, 25, 50, 100, 200, 300, 500, 1000, 2000, 5000, 10000, 30000,
)  # fmt: skip
"""Upper bounds (inclusive, milliseconds) of the rollups' latency buckets. Requests slower than
the last bound are counted in ``total`` only."""


class ContextSettings(BaseModel):
    """Base of the per-context models: frozen, and strict about unknown fields when one is
    built on its own (as part of :class:`~steadypay.config.Settings`, Settings' own
    ``extra="ignore"`` applies)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class EnvironmentSettings(ContextSettings):
    """Which kind of deployment this is (``STEADYPAY_ENV``)."""

    env: Environment = Environment.DEVELOPMENT


class DatabaseSettings(ContextSettings):
    """PostgreSQL: where it is (or the embedded cluster), the pool and server-side deadlines."""

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
    database_read_urls: tuple[SecretStr, ...] = Field(
        default=(),
        description="Replicas that may serve reads which tolerate staleness (JSON list of "
        "URLs: a Patroni cluster's members, RDS reader endpoints, CloudNativePG's -ro "
        "service). Empty: every read goes to STEADYPAY_DATABASE_URL (docs/ha.md).",
    )
    db_replica_max_lag_ms: int = Field(
        default=1000,
        gt=0,
        description="A replica further behind the primary than this serves no read.",
    )
    db_commit_timeout_ms: int = Field(
        default=5_000,
        gt=0,
        description="Longest wait for a COMMIT (with synchronous replication: for a standby "
        "to confirm it); then 503 commit_outcome_unknown, and the commit is left to finish.",
    )

    @model_validator(mode="after")
    def _pool_sizes_consistent(self) -> Self:
        if self.db_pool_min_size > self.db_pool_max_size:
            raise ValueError(
                "STEADYPAY_DB_POOL_MIN_SIZE must not exceed STEADYPAY_DB_POOL_MAX_SIZE"
            )
        return self

    def require_database_url(self) -> str:
        if self.database_url is None:
            raise RuntimeError("no database URL configured (set STEADYPAY_DATABASE_URL)")
        return self.database_url.get_secret_value()


class LedgerSettings(ContextSettings):
    """The ledger's write path: retries, concurrency and group commit."""

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


class IdempotencySettings(ContextSettings):
    """How long idempotency keys are kept and how often expired ones are purged."""

    idempotency_ttl_hours: float = Field(default=24.0, ge=24.0)
    idempotency_purge_interval_s: float = Field(default=300.0, gt=0)


class RiskSettings(ContextSettings):
    """The payment's risk step: the fraud call's deadline, the fallback limits when fraud does
    not answer, and review holds."""

    risk_review_above_score: int = Field(default=80, ge=0, le=100)
    risk_deadline_ms: int = Field(default=300, gt=0, description="Total time to ask fraud.")
    risk_fallback_amount_limit: int = Field(default=10_000, gt=0, description="Major units.")
    risk_fallback_daily_limit: int = Field(default=50_000, gt=0, description="Major units.")
    hold_ttl_hours: float = Field(default=72.0, gt=0, description="A review hold's lifetime.")
    hold_expiry_interval_s: float = Field(default=30.0, gt=0)


class FraudSettings(ContextSettings):
    """The fraud service: where it listens and the rules it scores with."""

    fraud_url: str = Field(default="http://127.0.0.1:8001", description="The fraud service.")
    fraud_rules: FraudRules = Field(
        default_factory=FraudRules,
        description="The fraud service's rules (JSON in STEADYPAY_FRAUD_RULES).",
    )


OUTBOX_BATCH_SIZE = 100
OUTBOX_DELIVERY_BATCH_SIZE = 100
OUTBOX_LEASE_S = 30.0
OUTBOX_MAX_AGE_HOURS = 72.0
OUTBOX_BACKOFF_BASE_S = 1.0
OUTBOX_BACKOFF_CAP_S = 600.0
"""The outbox relay's defaults, here once: :class:`OutboxSettings`' and those of
:class:`steadypay.outbox.RelayOptions` (what a relay built in code gets)."""


class OutboxSettings(ContextSettings):
    """The outbox relay (``steadypay.outbox``): batches, leases, retries, dead-lettering."""

    outbox_batch_size: int = Field(default=OUTBOX_BATCH_SIZE, ge=1)
    outbox_delivery_batch_size: int = Field(
        default=OUTBOX_DELIVERY_BATCH_SIZE,
        ge=1,
        le=1000,
        description="Events per POST to the notification service's /events/batch (1: one "
        "POST per event to /events).",
    )
    outbox_lease_s: float = Field(default=OUTBOX_LEASE_S, gt=0)
    outbox_max_age_hours: float = Field(
        default=OUTBOX_MAX_AGE_HOURS, gt=0, description="Then dead-lettered."
    )
    outbox_backoff_base_s: float = Field(default=OUTBOX_BACKOFF_BASE_S, gt=0)
    outbox_backoff_cap_s: float = Field(default=OUTBOX_BACKOFF_CAP_S, gt=0)


WEBHOOK_MAX_AGE_HOURS = 72.0
WEBHOOK_BACKOFF_BASE_S = 5.0
WEBHOOK_BACKOFF_CAP_S = 3600.0
WEBHOOK_TIMEOUT_S = 5.0
WEBHOOK_ROTATION_WINDOW_HOURS = 24.0
"""The webhook delivery defaults: here once, for the settings and for
:class:`steadypay.notifications.options.NotificationOptions`."""


class NotificationSettings(ContextSettings):
    """The notification service: where it listens, and how it delivers and retries webhooks."""

    notification_url: str = Field(
        default="http://127.0.0.1:8002", description="The notification service."
    )
    webhook_max_age_hours: float = Field(
        default=WEBHOOK_MAX_AGE_HOURS, gt=0, description="Retry this long."
    )
    webhook_backoff_base_s: float = Field(default=WEBHOOK_BACKOFF_BASE_S, gt=0)
    webhook_backoff_cap_s: float = Field(default=WEBHOOK_BACKOFF_CAP_S, gt=0)
    webhook_timeout_s: float = Field(default=WEBHOOK_TIMEOUT_S, gt=0)
    webhook_rotation_window_hours: float = Field(default=WEBHOOK_ROTATION_WINDOW_HOURS, gt=0)
    webhook_allowed_networks: tuple[str, ...] | None = Field(
        default=None,
        description="CIDRs webhook deliveries may connect to although the SSRF guard refuses "
        "them (loopback, private, link-local, unique-local, multicast, reserved addresses), "
        'e.g. ["10.20.0.0/16"]. Unset: loopback (127.0.0.0/8, ::1) outside production, none '
        "in production. Cloud metadata addresses are refused even if listed. In production "
        "it also lets an endpoint be registered with an IP literal in these networks.",
    )

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _networks_are_cidrs(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        import ipaddress  # here, not at the top: this model's concern only

        for network in value or ():
            try:
                ipaddress.ip_network(network.strip(), strict=False)
            except ValueError as exc:
                raise ValueError(f"{network!r} is not an IP network (CIDR): {exc}") from exc
        return value


class SloSettings(ContextSettings):
    """SLO: per-minute SLI rollups and error budgets (``steadypay.observability.sli``/``slo``)."""

    slo_objective: float = Field(
        default=0.999, gt=0, lt=1, description="Availability objective (0.999 = 99.9%)."
    )
    slo_latency_threshold_ms: int = Field(
        default=300,
        description="Latency SLI: share of requests at most this slow. One of the rollups' "
        "bucket bounds (steadypay.config.LATENCY_BOUNDS_MS).",
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


class CloudWatchSettings(ContextSettings):
    """CloudWatch export (``steadypay.observability.cloudwatch``)."""

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


class HealthSettings(ContextSettings):
    """Health endpoints and scrape-time gauges (``steadypay.observability.health``)."""

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


class MonitorSettings(ContextSettings):
    """The health monitor (``steadypay.monitor``, ``steadypay monitor``)."""

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
    monitor_patroni_urls: tuple[str, ...] = Field(
        default=(),
        description="Patroni REST URLs of the database cluster's members (JSON list): each "
        "round reports their roles, lag and a split brain. Empty: no cluster check.",
    )


class ChaosSettings(ContextSettings):
    """In-process fault injection (``steadypay.faults``)."""

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


class HttpSettings(ContextSettings):
    """The HTTP server: the admin key, where it listens, how many worker processes."""

    admin_key: SecretStr | None = Field(
        default=None, description="Admin bearer key. Unset: `up` generates one in data_dir."
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1)


MIN_INTERNAL_KEY_LENGTH = 32
_BEARER_TOKEN = re.compile(r"[\x21-\x7e]+")
INTERNAL_KEY_CONTEXT = b"steadypay internal v1"
"""What HMAC-SHA256 with the admin key is taken of, outside production, when
``STEADYPAY_INTERNAL_KEYS`` is unset (:func:`derived_internal_key`)."""


def derived_internal_key(admin_key: str) -> str:
    """The development and test internal key: HMAC-SHA256(admin key, "steadypay internal v1"),
    hex. Every process given the same admin key derives the same key, so `steadypay up`, the
    chaos environment and a service started alone with only ``STEADYPAY_ADMIN_KEY`` agree;
    knowing it does not give the admin key back. Production never derives (it refuses this
    value: whoever holds the admin key could compute it)."""
    return hmac.new(admin_key.encode(), INTERNAL_KEY_CONTEXT, hashlib.sha256).hexdigest()


class ServiceAuthSettings(ContextSettings):
    """Service-to-service keys and the ``/metrics`` scrape token (docs/security.md)."""

    internal_keys: tuple[SecretStr, ...] = Field(
        default=(),
        description="Keys of steadypay's own services (JSON list): the fraud and notification "
        "services accept any listed key as bearer on every route but health; callers (the "
        "API, the outbox relay) send the first. Rotate in three rollouts: [old, new] (all "
        "accept new), [new, old] (callers send new), [new]. Unset outside production: one "
        "key derived from the admin key.",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="Bearer token /metrics requires (Prometheus: authorization.credentials_"
        "file). Unset: /metrics answers loopback clients only, 403 to anyone else.",
    )

    @field_validator("internal_keys", "metrics_token")
    @classmethod
    def _usable_as_bearer(cls, value: object) -> object:
        for secret in value if isinstance(value, tuple) else (value,):
            if isinstance(secret, SecretStr) and not _BEARER_TOKEN.fullmatch(
                secret.get_secret_value()
            ):
                raise ValueError("must be printable ASCII without spaces (a bearer token)")
        return value


def _rate(value: str | None) -> str | None:
    """A limit in the ``limits`` notation: ``<count>/<second|minute|hour|day>`` (``100/second``,
    ``20 per minute``); checked here so a typo fails at start-up."""
    if value is None:
        return None
    match = RATE_PATTERN.match(value.strip())
    if match is None or int(match["count"]) < 1:
        raise ValueError(f"{value!r} is not a limit like '100/second' or '20/minute'")
    return value.strip()


RATE_PATTERN = re.compile(
    r"^(?P<count>\d{1,9})\s*(?:/|per)\s*(?:(?P<multiple>\d{1,6})\s*)?"
    r"(?P<unit>second|minute|hour|day)s?$"
)


class RateLimitSettings(ContextSettings):
    """Abuse limits: per API key, and per client address for failed authentication
    (docs/security.md). Shared through Redis when ``STEADYPAY_REDIS_URL`` is set, per worker
    otherwise."""

    rate_limit_enabled: bool = Field(default=True, description="Off: no limit at all.")
    rate_limit_per_user_key: str | None = Field(
        default="100/second",
        description="Requests per user API key (a sliding window); then 429 rate_limited. "
        "Unset: unlimited.",
    )
    rate_limit_per_admin_key: str | None = Field(
        default="2000/second",
        description="Requests per operator key (STEADYPAY_ADMIN_KEY and each named admin key); "
        "load tools use these. Unset: unlimited.",
    )
    rate_limit_auth_failures: str = Field(
        default="20/minute",
        description="Unknown bearer keys per client address; past it, requests from that "
        "address with a key not seen to succeed get 429 without a database lookup.",
    )

    _check_rates = field_validator(
        "rate_limit_per_user_key", "rate_limit_per_admin_key", "rate_limit_auth_failures"
    )(_rate)


HTTP_MAX_BODY_BYTES = 1024 * 1024
HTTP_MAX_BATCH_BODY_BYTES = 8 * 1024 * 1024
HTTP_MAX_JSON_DEPTH = 32
"""The input limits' defaults, here once: :class:`InputLimitSettings`' and those of
:class:`steadypay.http.limits.InputLimits` (what an app built in code gets)."""


class InputLimitSettings(ContextSettings):
    """Input hygiene at the HTTP edge: body size and JSON nesting limits (docs/security.md).
    Every service answers a larger body ``413 payload_too_large`` before reading it in full, and
    deeper JSON ``400 validation_error``."""

    http_max_body_bytes: int = Field(
        default=HTTP_MAX_BODY_BYTES,
        ge=1024,
        description="Largest request body in bytes (Content-Length, or as a chunked body "
        "streams in) on every route but the batch ones.",
    )
    http_max_batch_body_bytes: int = Field(
        default=HTTP_MAX_BATCH_BODY_BYTES,
        ge=1024,
        description="Largest request body of POST /v1/transfers/batch (8,189 transfers of "
        "about 1 KB each).",
    )
    http_max_json_depth: int = Field(
        default=HTTP_MAX_JSON_DEPTH,
        ge=4,
        le=256,
        description="Deepest nesting of JSON objects and arrays in a request body.",
    )


class LoggingSettings(ContextSettings):
    """Log level and format."""

    log_level: str = "info"
    log_json: bool | None = Field(
        default=None,
        description="JSON log lines (one object per line). Unset: JSON unless stderr is a "
        "terminal, so a laptop gets readable lines and a container gets JSON.",
    )


class BackupSettings(ContextSettings):
    """Continuous backups with barman-cloud (``steadypay.backup``, docs/dr.md). The S3 endpoint
    is boto3's standard ``AWS_ENDPOINT_URL``; credentials come from boto3's chain."""

    backup_enabled: bool = Field(
        default=False, description="Archive WAL and take base backups to the backup bucket."
    )
    backup_bucket_url: str | None = Field(
        default=None, description="Primary region's backups: s3://bucket/prefix."
    )
    backup_region: str | None = Field(default=None, description="The primary bucket's region.")
    backup_kms_key_id: str | None = Field(
        default=None, description="KMS key (id or ARN) of SSE-KMS in the primary region."
    )
    backup_dr_bucket_url: str | None = Field(
        default=None, description="The DR region's copy: s3://bucket/prefix. Unset: no copy."
    )
    backup_dr_region: str | None = Field(default=None, description="The DR bucket's region.")
    backup_dr_kms_key_id: str | None = Field(
        default=None, description="KMS key the DR copy is re-encrypted under."
    )
    backup_server_name: str = Field(
        default="steadypay",
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="barman's server name: the folder of this cluster in the bucket.",
    )
    backup_interval_s: float = Field(
        default=86_400.0, gt=0, description="A base backup this often."
    )
    backup_retention_days: int = Field(
        default=14, ge=1, description="RECOVERY WINDOW OF N DAYS (barman-cloud-backup-delete)."
    )
    backup_archive_timeout_s: int = Field(
        default=3,
        ge=1,
        description="PostgreSQL's archive_timeout: WAL written is shipped at least this often, "
        "which bounds what a lost region loses (a quiet system switches no segment).",
    )
    backup_verified_max_age_s: float = Field(
        default=2 * 86_400.0 + 3_600.0,
        gt=0,
        description="/health/ready warns when the newest verified backup is older than this.",
    )

    @field_validator("backup_bucket_url", "backup_dr_bucket_url")
    @classmethod
    def _s3_url(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("s3://") or len(value) <= len("s3://")):
            raise ValueError(f"must be an s3://bucket/prefix URL, not {value!r}")
        return value.rstrip("/") if value is not None else None

    @model_validator(mode="after")
    def _enabled_needs_bucket(self) -> Self:
        if self.backup_enabled and self.backup_bucket_url is None:
            raise ValueError(
                "STEADYPAY_BACKUP_ENABLED=true needs STEADYPAY_BACKUP_BUCKET_URL (s3://bucket/prefix)"
            )
        if self.backup_dr_bucket_url is not None and self.backup_dr_bucket_url == (
            self.backup_bucket_url
        ):
            raise ValueError("STEADYPAY_BACKUP_DR_BUCKET_URL must differ from the primary bucket")
        return self


class DrSettings(ContextSettings):
    """The regional failover runbook (``steadypay dr failover``, docs/dr.md): where DNS and
    the stakeholders are, and how to reach the failed region to fence it."""

    dr_hosted_zone_id: str | None = Field(
        default=None, description="Route 53 hosted zone of the API's name. Unset: no DNS step."
    )
    dr_record_name: str | None = Field(
        default=None, description="The API's DNS name (weighted records, one per region)."
    )
    dr_sns_topic_arn: str | None = Field(
        default=None, description="SNS topic told of a failover. Unset: no notification."
    )
    dr_peer_database_url: SecretStr | None = Field(
        default=None,
        description="The failed region's primary (superuser URL), made read-only by the fence "
        "step when it can still be reached.",
    )

    @model_validator(mode="after")
    def _dns_pair(self) -> Self:
        if (self.dr_hosted_zone_id is None) != (self.dr_record_name is None):
            raise ValueError("set both STEADYPAY_DR_HOSTED_ZONE_ID and STEADYPAY_DR_RECORD_NAME")
        return self
