"""Configuration: the one place that reads the environment.

Every setting has the prefix ``STEADYPAY_`` (``STEADYPAY_DATABASE_URL``, ...).
Nothing else in steadypay calls ``os.environ`` for configuration; the composition root
(:mod:`steadypay.bootstrap`) builds everything from one :class:`Settings` instance.

:class:`Settings` inherits one small model per concern (decision 0007), so its fields, their
``STEADYPAY_*`` names and ``Settings(database_url=...)`` / ``settings.db_pool_max_size`` stay
flat, while a consumer that needs one concern can annotate just that model:

==============================  ==========================================================
model                           fields (``STEADYPAY_`` + upper case)
==============================  ==========================================================
:class:`EnvironmentSettings`    ``env``
:class:`DatabaseSettings`       ``database_url``, ``data_dir``, ``pg_bin_dir``, ``db_*``
:class:`LedgerSettings`         ``ledger_*``
:class:`IdempotencySettings`    ``idempotency_*``
:class:`RiskSettings`           ``risk_*``, ``hold_*``
:class:`FraudSettings`          ``fraud_url``, ``fraud_rules`` (:class:`FraudRules`)
:class:`OutboxSettings`         ``outbox_*``
:class:`NotificationSettings`   ``notification_url``, ``webhook_*``
:class:`DependenciesSettings`   ``dependencies`` (:class:`DependencySettings` each),
                                ``redis_*``, ``breaker_store_cooldown_s``
:class:`SloSettings`            ``slo_*``, ``sli_*`` (:data:`LATENCY_BOUNDS_MS`)
:class:`CloudWatchSettings`     ``cloudwatch_*``
:class:`HealthSettings`         ``health_*``
:class:`MonitorSettings`        ``monitor_*``
:class:`ChaosSettings`          ``chaos_*``
:class:`HttpSettings`           ``admin_key``, ``host``, ``port``, ``workers``
:class:`ServiceAuthSettings`    ``internal_keys``, ``metrics_token``
:class:`RateLimitSettings`      ``rate_limit_*``
:class:`InputLimitSettings`     ``http_max_*``
:class:`LoggingSettings`        ``log_level``, ``log_json``
:class:`BackupSettings`         ``backup_*`` (barman-cloud, the DR copy)
:class:`DrSettings`             ``dr_*`` (the regional failover runbook)
==============================  ==========================================================

Modules: :mod:`~steadypay.config.contexts` (the per-context models),
:mod:`~steadypay.config.dependencies` (outbound dependencies), :mod:`~steadypay.config.fraud`
(the fraud rules engine's thresholds), :mod:`~steadypay.config.settings` (:class:`Settings`).

This package imports nothing from steadypay: every other layer may depend on it.
"""

from steadypay.config.contexts import (
    LATENCY_BOUNDS_MS,
    MIN_ADMIN_KEY_LENGTH,
    BackupSettings,
    ChaosSettings,
    CloudWatchSettings,
    ContextSettings,
    DatabaseSettings,
    DrSettings,
    Environment,
    EnvironmentSettings,
    FraudSettings,
    HealthSettings,
    HttpSettings,
    IdempotencySettings,
    InputLimitSettings,
    LedgerSettings,
    LoggingSettings,
    MonitorSettings,
    NotificationSettings,
    OutboxSettings,
    RateLimitSettings,
    RiskSettings,
    ServiceAuthSettings,
    SloSettings,
)
from steadypay.config.dependencies import DependenciesSettings, DependencySettings
from steadypay.config.fraud import AmountBand, FraudRules, VelocityRule
from steadypay.config.settings import Settings

__all__ = [
    "LATENCY_BOUNDS_MS",
    "MIN_ADMIN_KEY_LENGTH",
    "AmountBand",
    "BackupSettings",
    "ChaosSettings",
    "CloudWatchSettings",
    "ContextSettings",
    "DatabaseSettings",
    "DependenciesSettings",
    "DependencySettings",
    "DrSettings",
    "Environment",
    "EnvironmentSettings",
    "FraudRules",
    "FraudSettings",
    "HealthSettings",
    "HttpSettings",
    "IdempotencySettings",
    "InputLimitSettings",
    "LedgerSettings",
    "LoggingSettings",
    "MonitorSettings",
    "NotificationSettings",
    "OutboxSettings",
    "RateLimitSettings",
    "RiskSettings",
    "ServiceAuthSettings",
    "Settings",
    "SloSettings",
    "VelocityRule",
]
