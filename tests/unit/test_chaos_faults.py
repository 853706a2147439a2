"""In-process fault injection: rates, targets, phases, seeds, expiry, and refusal in production."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from steadypay import errors
from steadypay.faults.injector import (
    ChaosConfig,
    FaultInjector,
    FaultRule,
    InjectedFault,
    chaos,
    fault_error,
)


def outcomes(
    injector: FaultInjector, n: int, component: str = "database", target: str = "api"
) -> list[str]:
    results: list[str] = []

    async def go() -> None:
        for _ in range(n):
            try:
                await injector.inject(component, target)  # type: ignore[arg-type]
                results.append("ok")
            except Exception as exc:
                results.append(type(exc).__name__)

    asyncio.run(go())
    return results


def test_the_failure_rate_is_respected_and_every_type_maps_to_a_real_error() -> None:
    injector = FaultInjector(
        ChaosConfig(enabled=True, rules=(FaultRule(failure_rate=0.2),), seed=1)
    )
    seen = outcomes(injector, 5000, "api", "/v1/transfers")
    assert 0.18 < 1 - seen.count("ok") / 5000 < 0.22
    assert set(seen) == {
        "ok",
        "DatabaseUnavailable",
        "DependencyTimeout",
        "ServiceUnavailable",
        "InjectedFault",
    }
    assert set(outcomes(injector, 500, "database", "api")) == {
        "ok",
        "DatabaseUnavailable",
        "InjectedFault",
    }
    assert isinstance(fault_error("service", "dependency", "fraud"), errors.DependencyFailure)
    assert isinstance(fault_error("generic", "database", "api"), InjectedFault)


def test_the_same_seed_replays_the_same_faults() -> None:
    config = ChaosConfig(enabled=True, rules=(FaultRule(failure_rate=0.3),), seed=42)
    first = outcomes(FaultInjector(config), 200)
    assert outcomes(FaultInjector(config), 200) == first
    other = ChaosConfig(enabled=True, rules=(FaultRule(failure_rate=0.3),), seed=43)
    assert outcomes(FaultInjector(other), 200) != first


def test_rules_target_one_hook_and_one_target() -> None:
    rule = FaultRule(component="dependency", target="fraud", failure_rate=1.0, types=("service",))
    injector = FaultInjector(ChaosConfig(enabled=True, rules=(rule,)))
    assert outcomes(injector, 3, "dependency", "fraud") == ["DependencyFailure"] * 3
    assert outcomes(injector, 3, "dependency", "notifications") == ["ok"] * 3
    assert outcomes(injector, 3, "database", "fraud") == ["ok"] * 3
    api = FaultRule(component="api", target="/v1/transfers", failure_rate=1.0, phase="after")
    injector.configure(ChaosConfig(enabled=True, rules=(api,)))
    assert injector.active_rules("api", "/v1/transfers/{transfer_id}", "after") == [api]
    assert injector.active_rules("api", "/v1/transfers", "before") == []
    assert injector.active_rules("api", "/v1/wallets", "after") == []


def test_latency_is_injected_within_its_range() -> None:
    rule = FaultRule(failure_rate=0.0, latency_rate=1.0, latency_ms=(30, 40))
    injector = FaultInjector(ChaosConfig(enabled=True, rules=(rule,)))

    async def timed() -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await injector.inject("database", "api")
        return loop.time() - started

    assert 0.029 <= asyncio.run(timed()) < 0.2


def test_faults_switch_themselves_off_at_expiry_and_when_disabled() -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    rule = FaultRule(failure_rate=1.0)
    expired = FaultInjector(ChaosConfig(enabled=True, rules=(rule,), expires_at=past))
    assert outcomes(expired, 5) == ["ok"] * 5
    assert outcomes(FaultInjector(ChaosConfig(enabled=False, rules=(rule,))), 5) == ["ok"] * 5


def test_refused_where_not_allowed() -> None:
    injector = FaultInjector(allowed=False)
    with pytest.raises(errors.ChaosForbidden):
        injector.configure(ChaosConfig(enabled=True, rules=(FaultRule(),)))
    injector.configure(ChaosConfig(enabled=False))  # switching off is always allowed


def test_the_decorator_injects_and_every_fault_is_counted() -> None:
    injector = FaultInjector(
        ChaosConfig(enabled=True, rules=(FaultRule(failure_rate=1.0, types=("database",)),))
    )

    @chaos("balance_lookup", injector=injector)
    async def balance() -> int:
        return 7

    def count() -> float:
        value = REGISTRY.get_sample_value(
            "steadypay_chaos_faults_injected_total",
            {"component": "database", "target": "balance_lookup", "kind": "database"},
        )
        return value or 0.0

    before = count()
    with pytest.raises(errors.DatabaseUnavailable):
        asyncio.run(balance())
    assert count() == before + 1
    injector.configure(ChaosConfig())
    assert asyncio.run(balance()) == 7


def test_invalid_rules_are_rejected() -> None:
    with pytest.raises(ValueError, match="latency_ms"):
        FaultRule(latency_ms=(50, 10))
    with pytest.raises(ValueError, match="less than or equal to 1"):
        FaultRule(failure_rate=1.5)


def test_a_production_process_refuses_to_start_with_chaos_unless_allowed() -> None:
    from steadypay.config import Environment, Settings
    from steadypay.faults.runtime import configure_from_settings

    strong = "k" * 40
    production = Settings(
        env=Environment.PRODUCTION,
        database_url="postgresql://u:p@127.0.0.1:1/x",
        admin_key=strong,
        internal_keys=("internal-0123456789abcdefghijklmnopqrstuv",),
        chaos_enabled=True,
    )
    injector = FaultInjector()
    with pytest.raises(errors.ChaosForbidden):
        configure_from_settings(production, injector)
    assert not injector.config.enabled
    allowed = production.model_copy(update={"chaos_allow_in_production": True})
    configure_from_settings(allowed, injector)
    assert injector.config.enabled
    assert injector.config.rules[0].failure_rate == 0.01  # the seed's default rate
