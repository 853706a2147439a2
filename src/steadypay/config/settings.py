""":class:`Settings`: every per-context model in one object that reads the environment."""

from __future__ import annotations

from typing import Self

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from steadypay.config.contexts import (
    MIN_ADMIN_KEY_LENGTH,
    BackupSettings,
    ChaosSettings,
    CloudWatchSettings,
    DatabaseSettings,
    DrSettings,
    Environment,
    EnvironmentSettings,
    FraudSettings,
    HealthSettings,
    HttpSettings,
    IdempotencySettings,
    LedgerSettings,
    LoggingSettings,
    MonitorSettings,
    NotificationSettings,
    OutboxSettings,
    RiskSettings,
    SloSettings,
)
from steadypay.config.dependencies import DependenciesSettings, DependencySettings


# pydantic collects fields from the end of the MRO, so the bases are listed last concern first:
# the fields (and STEADYPAY_* in the JSON schema) come out in the order env, database, ledger,
# idempotency, risk, fraud, outbox, notifications, dependencies, SLO, CloudWatch, health,
# monitor, chaos, HTTP, logging.
class Settings(
    DrSettings,
    BackupSettings,
    LoggingSettings,
    HttpSettings,
    ChaosSettings,
    MonitorSettings,
    HealthSettings,
    CloudWatchSettings,
    SloSettings,
    DependenciesSettings,
    NotificationSettings,
    OutboxSettings,
    FraudSettings,
    RiskSettings,
    IdempotencySettings,
    LedgerSettings,
    DatabaseSettings,
    EnvironmentSettings,
    BaseSettings,
):
    """steadypay's configuration, read from ``STEADYPAY_*`` environment variables."""

    model_config = SettingsConfigDict(
        env_prefix="STEADYPAY_", env_nested_delimiter="__", extra="ignore", frozen=True
    )

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Self:
        if self.env is Environment.PRODUCTION:
            if self.database_url is None:
                raise ValueError("STEADYPAY_DATABASE_URL is required when STEADYPAY_ENV=production")
            key = self.admin_key.get_secret_value() if self.admin_key else ""
            if len(key) < MIN_ADMIN_KEY_LENGTH:
                raise ValueError(
                    "STEADYPAY_ADMIN_KEY must be set to a random secret of at least "
                    f"{MIN_ADMIN_KEY_LENGTH} characters when STEADYPAY_ENV=production"
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
        return self.merged_dependencies(defaults)
