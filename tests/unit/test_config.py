"""Settings is composed of per-context models and keeps its flat names (decision 0007)."""

from __future__ import annotations

import ast
import inspect
import os
import pathlib

import pytest
from pydantic import ValidationError

import steadypay.config
from steadypay.config import (
    LATENCY_BOUNDS_MS,
    ContextSettings,
    DatabaseSettings,
    DependencySettings,
    Settings,
    SloSettings,
)
from steadypay.resilience.settings import pipeline_config

KERNEL = {"steadypay.errors", "steadypay.money", "steadypay.currencies"}


def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("STEADYPAY_"):
            monkeypatch.delenv(name)


def test_config_imports_nothing_above_the_kernel() -> None:
    package = pathlib.Path(steadypay.config.__file__).parent
    for module in package.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                if name.startswith("steadypay"):
                    assert name.startswith("steadypay.config") or name in KERNEL, (module, name)


def test_every_field_comes_from_one_context_model() -> None:
    contexts = [
        base
        for base in Settings.__mro__
        if isinstance(base, type) and issubclass(base, ContextSettings) and base is not Settings
    ]
    owned = [name for model in contexts for name in inspect.get_annotations(model)]
    assert sorted(owned) == sorted(Settings.model_fields)  # no field twice, none outside
    # 86 + 12 for backups + 4 for the DR runbook (issue 13) + 10 for security (issue 14:
    # 2 service keys, 4 rate limits, 3 input limits, the webhook allow-list)
    assert len(Settings.model_fields) == 112


def test_env_names_and_flat_access(monkeypatch: pytest.MonkeyPatch) -> None:
    _clean_env(monkeypatch)
    monkeypatch.setenv("STEADYPAY_DB_POOL_MAX_SIZE", "7")
    monkeypatch.setenv("STEADYPAY_DEPENDENCIES__FRAUD__URL", "http://fraud:1")
    monkeypatch.setenv("STEADYPAY_FRAUD_RULES__VERSION", "v-env")
    monkeypatch.setenv("STEADYPAY_SLO_LATENCY_THRESHOLD_MS", "500")
    settings = Settings(database_url="postgresql://x/y", admin_key="k" * 40)
    assert settings.db_pool_max_size == 7
    assert settings.require_database_url() == "postgresql://x/y"
    assert settings.fraud_rules.version == "v-env"
    assert settings.slo_latency_threshold_ms == 500
    assert settings.dependency_settings()["fraud"].url == "http://fraud:1"
    assert settings.dependency_settings()["fraud"].max_retries == 2  # the default's, kept


def test_settings_is_each_narrower_model() -> None:
    def pool_max(settings: DatabaseSettings) -> int:
        return settings.db_pool_max_size

    settings = Settings(db_pool_max_size=9)
    assert isinstance(settings, DatabaseSettings)
    assert isinstance(settings, SloSettings)
    assert pool_max(settings) == 9
    assert pool_max(DatabaseSettings(db_pool_max_size=4)) == 4


def test_validators_of_the_context_models() -> None:
    with pytest.raises(ValidationError, match="must not exceed"):
        DatabaseSettings(db_pool_min_size=5, db_pool_max_size=1)
    with pytest.raises(ValidationError, match="must not exceed"):
        Settings(db_pool_min_size=5, db_pool_max_size=1)
    with pytest.raises(ValidationError, match="rollup bucket bounds"):
        SloSettings(slo_latency_threshold_ms=301)
    assert 300 in LATENCY_BOUNDS_MS
    with pytest.raises(ValidationError, match="STEADYPAY_DATABASE_URL is required"):
        Settings(env="production", admin_key="k" * 40)
    with pytest.raises(ValidationError, match="needs a url"):
        Settings(dependencies={"vault": DependencySettings(critical=True)})


def test_pipeline_config_from_dependency_settings() -> None:
    config = pipeline_config(DependencySettings(url="http://x", max_retries=3, window_s=30))
    assert config.max_attempts == 4
    assert config.breaker.window_s == 30
