"""Configuration: the one place that reads the environment.

Every setting has the prefix ``STEADYPAY_`` (``STEADYPAY_DATABASE_URL``, ...).
Nothing else in steadypay calls ``os.environ`` for configuration; the composition root
(:mod:`steadypay.bootstrap`) builds everything from one :class:`Settings` instance.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


MIN_ADMIN_KEY_LENGTH = 32


class Settings(BaseSettings):
    """steadypay's configuration, read from ``STEADYPAY_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="STEADYPAY_", extra="ignore", frozen=True)

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
    ledger_retry_base_s: float = Field(default=0.005, gt=0)
    ledger_retry_cap_s: float = Field(default=0.25, gt=0)

    # --- idempotency ----------------------------------------------------------------------
    idempotency_ttl_hours: float = Field(default=24.0, ge=24.0)
    idempotency_purge_interval_s: float = Field(default=300.0, gt=0)

    # --- HTTP -----------------------------------------------------------------------------
    admin_key: SecretStr | None = Field(
        default=None, description="Admin bearer key. Unset: `up` generates one in data_dir."
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1)
    log_level: str = "info"
    log_json: bool = False

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
        return self

    def require_database_url(self) -> str:
        if self.database_url is None:
            raise RuntimeError("no database URL configured (set STEADYPAY_DATABASE_URL)")
        return self.database_url.get_secret_value()
