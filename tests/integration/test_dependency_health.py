"""Breaker states appear in /health/ready; only a critical dependency makes it 503."""

from __future__ import annotations

import contextlib

import httpx
from prometheus_client import CollectorRegistry

from steadypay import bootstrap
from steadypay.bootstrap.api import create_app
from steadypay.config import DependencySettings, Settings
from steadypay.errors import CircuitOpenError, DependencyFailure
from steadypay.resilience.events import Metrics, ObservedEvents
from steadypay.resilience.settings import pipeline_config
from tests.integration.conftest import free_port, serve


async def test_ready_reports_circuits_and_fails_only_for_critical(settings: Settings) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with_deps = settings.model_copy(
        update={
            "dependencies": {
                "fraud": DependencySettings(url=dead, critical=False),
                "vault": DependencySettings(url=dead, critical=True),
            }
        }
    )
    container = await bootstrap.build(with_deps)
    try:
        async with serve(create_app(with_deps, container)) as url, httpx.AsyncClient() as http:
            ready = (await http.get(f"{url}/health/ready")).json()
            fraud = ready["checks"]["fraud:circuit"][0]
            assert (fraud["status"], fraud["observedValue"]) == ("pass", "closed")

            await container.dependencies["fraud"].pipeline.breaker.force_open()
            r = await http.get(f"{url}/health/ready")
            assert r.status_code == 200
            assert r.json()["status"] == "warn"
            fraud = r.json()["checks"]["fraud:circuit"][0]
            assert (fraud["status"], fraud["observedValue"]) == ("warn", "forced_open")

            await container.dependencies["vault"].pipeline.breaker.force_open()
            r = await http.get(f"{url}/health/ready")
            assert r.status_code == 503
            assert r.json()["status"] == "fail"
            vault = r.json()["checks"]["vault:circuit"][0]
            assert (vault["status"], vault["observedValue"]) == ("fail", "forced_open")
            assert "critical" in vault["output"]
    finally:
        await container.close()


async def test_events_feed_prometheus_metrics(settings: Settings) -> None:
    registry = CollectorRegistry()
    dead = f"http://127.0.0.1:{free_port()}"
    one = settings.model_copy(
        update={
            "dependencies": {
                "fraud": DependencySettings(url=dead, failure_threshold=2, max_retries=0)
            }
        }
    )
    deps = bootstrap.build_dependencies(one, events=ObservedEvents(Metrics(registry)))
    client = deps["fraud"]
    try:
        for _ in range(2):
            with contextlib.suppress(DependencyFailure):
                await client.get("/check-fraud")
        with contextlib.suppress(CircuitOpenError):
            await client.get("/check-fraud")
    finally:
        await deps.aclose()

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"dependency": "fraud", **labels})

    assert value("steadypay_dependency_calls_total", outcome="failure") == 2
    assert value("steadypay_dependency_calls_total", outcome="rejected_open") == 1
    assert value("steadypay_circuit_breaker_state") == 2
    assert value("steadypay_dependency_call_duration_seconds_count") == 2
    assert value("steadypay_retry_budget_tokens") == 500


def test_dependencies_from_the_environment(monkeypatch: object) -> None:
    import pytest

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    monkeypatch.setenv("STEADYPAY_DEPENDENCIES__FRAUD__URL", "http://127.0.0.1:8001")
    monkeypatch.setenv("STEADYPAY_DEPENDENCIES__FRAUD__TOTAL_TIMEOUT_S", "0.3")
    monkeypatch.setenv("STEADYPAY_DEPENDENCIES__FRAUD__MAX_RETRIES", "2")
    parsed = Settings(database_url="postgresql://x/y", admin_key="k" * 40)
    config = pipeline_config(parsed.dependencies["fraud"])
    assert (config.total_timeout_s, config.max_attempts) == (0.3, 3)
    assert config.breaker.failure_threshold == 5


def test_one_override_keeps_the_other_defaults(monkeypatch: object) -> None:
    import pytest

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    monkeypatch.setenv("STEADYPAY_NOTIFICATION_URL", "http://127.0.0.1:9002")
    monkeypatch.setenv("STEADYPAY_DEPENDENCIES__NOTIFICATIONS__RESET_TIMEOUT_S", "1")
    parsed = Settings(database_url="postgresql://x/y", admin_key="k" * 40)
    notifications = parsed.dependency_settings()["notifications"]
    assert notifications.url == "http://127.0.0.1:9002"
    assert notifications.reset_timeout_s == 1
    assert notifications.max_retries == 1  # the notifications default, not the generic 2
    monkeypatch.setenv("STEADYPAY_DEPENDENCIES__LEDGER_MIRROR__MAX_RETRIES", "1")
    with pytest.raises(ValueError, match="needs a url"):
        Settings(database_url="postgresql://x/y", admin_key="k" * 40)
