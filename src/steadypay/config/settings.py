""":class:`Settings`: every per-context model in one object that reads the environment."""

from __future__ import annotations

from typing import Self

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from steadypay.config.contexts import (
    MIN_ADMIN_KEY_LENGTH,
    MIN_INTERNAL_KEY_LENGTH,
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
    derived_internal_key,
)
from steadypay.config.dependencies import DependenciesSettings, DependencySettings

KNOWN_DEFAULT_SECRETS = frozenset(
    {"changeme", "change-me", "secret", "steadypay", "internal", "metrics", "password"}
)
"""Placeholders refused as service keys in production (most are short anyway)."""
MIN_DISTINCT_CHARACTERS = 8
"""A production secret with fewer distinct characters (``"x" * 40``) is not random."""


# pydantic collects fields from the end of the MRO, so the bases are listed last concern first:
# the fields (and STEADYPAY_* in the JSON schema) come out in the order env, database, ledger,
# idempotency, risk, fraud, outbox, notifications, dependencies, SLO, CloudWatch, health,
# monitor, chaos, HTTP, logging.
class Settings(
    DrSettings,
    BackupSettings,
    LoggingSettings,
    InputLimitSettings,
    RateLimitSettings,
    ServiceAuthSettings,
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
            self._refuse_unsafe_service_keys(key)
        self.dependency_settings()  # every dependency resolves to a URL, or fail at load time
        return self

    def _refuse_unsafe_service_keys(self, admin_key: str) -> None:
        """Production: internal keys set, long, random-looking, none the admin key or what a
        holder of the admin key derives; a metrics token, if set, likewise and of its own."""
        keys = [k.get_secret_value() for k in self.internal_keys]
        if not keys:
            raise ValueError(
                "STEADYPAY_INTERNAL_KEYS must list at least one random secret of at least "
                f"{MIN_INTERNAL_KEY_LENGTH} characters when STEADYPAY_ENV=production"
            )
        refused = {admin_key, derived_internal_key(admin_key), *KNOWN_DEFAULT_SECRETS}
        for index, key in enumerate(keys):
            name = f"STEADYPAY_INTERNAL_KEYS[{index}]"
            if len(key) < MIN_INTERNAL_KEY_LENGTH or len(set(key)) < MIN_DISTINCT_CHARACTERS:
                raise ValueError(
                    f"{name} must be a random secret of at least {MIN_INTERNAL_KEY_LENGTH} "
                    "characters when STEADYPAY_ENV=production"
                )
            if key in refused:
                raise ValueError(
                    f"{name} must not be the admin key, derived from it, or a known default"
                )
        if self.metrics_token is not None:
            token = self.metrics_token.get_secret_value()
            if len(token) < MIN_INTERNAL_KEY_LENGTH or len(set(token)) < MIN_DISTINCT_CHARACTERS:
                raise ValueError(
                    "STEADYPAY_METRICS_TOKEN must be a random secret of at least "
                    f"{MIN_INTERNAL_KEY_LENGTH} characters when STEADYPAY_ENV=production"
                )
            if token in refused or token in keys:
                raise ValueError(
                    "STEADYPAY_METRICS_TOKEN must differ from the admin and internal keys"
                )

    def accepted_internal_keys(self) -> tuple[str, ...]:
        """The keys the fraud and notification services accept as bearer: every one of
        ``STEADYPAY_INTERNAL_KEYS``; when that is unset outside production, the one derived
        from the admin key (:func:`~steadypay.config.contexts.derived_internal_key`); else
        none (the services refuse to start)."""
        if self.internal_keys:
            return tuple(k.get_secret_value() for k in self.internal_keys)
        if self.admin_key is not None and self.env is not Environment.PRODUCTION:
            return (derived_internal_key(self.admin_key.get_secret_value()),)
        return ()

    def internal_key(self) -> str:
        """The key steadypay's processes send to its services: the first accepted one."""
        keys = self.accepted_internal_keys()
        if not keys:
            raise RuntimeError(
                "no internal service key: set STEADYPAY_INTERNAL_KEYS (or, outside "
                "production, STEADYPAY_ADMIN_KEY, from which one is derived)"
            )
        return keys[0]

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
