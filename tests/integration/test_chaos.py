"""In-process fault injection through the admin API, and the bank checker under 5% faults of
every type at every hook: no money lost, invented or moved twice."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from steadypay import bootstrap
from steadypay.bootstrap.api import create_app
from steadypay.chaos.bank import BankClient, BankOptions, run_workload
from steadypay.chaos.checker import check
from steadypay.config import Environment, Settings
from steadypay.faults.injector import ChaosConfig
from tests.api_client import Api
from tests.integration.conftest import ADMIN_KEY, serve


@pytest.fixture
async def chaos_off(api: Api, container: bootstrap.Container) -> AsyncIterator[None]:
    """Whatever a test turns on is off again after it, in the database and in the API's
    process (its container's injector)."""
    try:
        yield
    finally:
        r = await api.http.put("/v1/admin/chaos", json={"enabled": False}, headers=api.auth())
        assert r.status_code == 200, r.text
        container.faults.configure(ChaosConfig())


def injected(component: str) -> float:
    total = 0.0
    for metric in REGISTRY.collect():
        if metric.name == "steadypay_chaos_faults_injected":
            total += sum(
                s.value
                for s in metric.samples
                if s.name.endswith("_total") and s.labels.get("component") == component
            )
    return total


async def put_chaos(api: Api, body: dict[str, object]) -> httpx.Response:
    return await api.http.put("/v1/admin/chaos", json=body, headers=api.auth())


async def test_a_lost_acknowledgement_is_recovered_by_retrying_with_the_same_key(
    api: Api, chaos_off: None
) -> None:
    r = await api.get("/v1/admin/chaos")
    assert r.status_code == 200
    assert r.json()["active"] is False
    _, source = await api.funded_wallet("10.00")
    _, target = await api.funded_wallet("")
    rule = {
        "component": "api",
        "target": "/v1/transfers",
        "phase": "after",
        "failure_rate": 1.0,
        "types": ["service"],
    }
    r = await put_chaos(api, {"enabled": True, "rules": [rule], "duration_s": 30})
    assert r.status_code == 200, r.text
    assert r.json()["active"] is True
    body = {
        "from_wallet_id": source["id"],
        "to_wallet_id": target["id"],
        "amount": "4.00",
        "currency": "USD",
    }
    key = str(uuid.uuid4())
    lost = await api.post("/v1/transfers", body, idem=key)
    assert lost.status_code == 503
    assert lost.headers["x-steadypay-chaos"] == "service"
    assert lost.json()["error"]["code"] == "service_unavailable"
    assert await api.balance(target["id"]) == "4.00"  # it happened: only the answer was lost

    assert (await put_chaos(api, {"enabled": False})).status_code == 200
    retry = await api.post("/v1/transfers", body, idem=key)
    assert retry.status_code == 201
    assert retry.headers["idempotent-replayed"] == "true"
    assert await api.balance(target["id"]) == "4.00"


async def test_faults_switch_off_at_their_expiry(api: Api, chaos_off: None) -> None:
    _, wallet = await api.funded_wallet("1.00")
    rule = {"component": "api", "target": "/v1/wallets", "failure_rate": 1.0, "types": ["database"]}
    r = await put_chaos(api, {"enabled": True, "rules": [rule], "duration_s": 1.0})
    assert r.status_code == 200, r.text
    failed = await api.get(f"/v1/wallets/{wallet['id']}")
    assert failed.status_code == 503
    assert failed.json()["error"]["code"] == "database_unavailable"
    assert failed.headers["x-steadypay-chaos"] == "database"
    await asyncio.sleep(1.1)
    assert (await api.get(f"/v1/wallets/{wallet['id']}")).status_code == 200


async def test_invalid_chaos_is_refused_and_changes_nothing(api: Api, chaos_off: None) -> None:
    for bad in (
        {"enabled": True, "rules": [{"failure_rate": 2}]},
        {"enabled": True, "duration_s": 10**9},
        {"enabled": True, "rules": [{"latency_ms": [50, 10]}]},
        {"enabled": True, "rules": [{"types": ["meteor"]}]},
    ):
        r = await put_chaos(api, bad)
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["error"]["code"] == "validation_error"
    assert (await api.get("/v1/admin/chaos")).json()["active"] is False


async def test_production_refuses_chaos(settings: Settings) -> None:
    production = settings.model_copy(
        update={
            "env": Environment.PRODUCTION,
            "internal_keys": (SecretStr("internal-0123456789abcdefghijklmnopqrstuv"),),
        }
    )
    container = await bootstrap.build(production)
    try:
        async with (
            serve(create_app(production, container)) as url,
            httpx.AsyncClient(base_url=url, timeout=10) as http,
        ):
            r = await http.put(
                "/v1/admin/chaos",
                json={"enabled": True, "rules": [{"failure_rate": 1.0}]},
                headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            )
            assert r.status_code == 403
            assert r.json()["error"]["code"] == "chaos_forbidden"
    finally:
        await container.close()


async def test_the_bank_stays_exact_under_five_percent_faults_everywhere(
    api: Api,
    base_url: str,
    database_url: str,
    container: bootstrap.Container,
    chaos_off: None,
) -> None:
    options = BankOptions(
        wallets=5, clients=6, duration_s=2.5, initial_minor=50_000, give_up_s=5.0, seed=21
    )
    client = BankClient(base_url, ADMIN_KEY, options)
    try:
        setup = await client.set_up(uuid.uuid4().hex[:10])
        rules = [
            {"component": "api", "phase": "before", "failure_rate": 0.05},
            {"component": "api", "phase": "after", "failure_rate": 0.05},
            {"component": "database", "failure_rate": 0.05},
            {"component": "dependency", "failure_rate": 0.05},
            {"failure_rate": 0.0, "latency_rate": 0.05, "latency_ms": [5, 30]},
        ]
        before = {c: injected(c) for c in ("api", "database")}
        r = await put_chaos(api, {"enabled": True, "rules": rules, "duration_s": 60, "seed": 9})
        assert r.status_code == 200, r.text
        run = await run_workload(client, options, setup=setup)
        assert (await put_chaos(api, {"enabled": False})).status_code == 200
        container.faults.configure(ChaosConfig())
        conn = await asyncpg.connect(database_url)
        try:
            verdict = await check(client, run, conn, resolve_give_up_s=10)
        finally:
            await conn.close()
    finally:
        await client.aclose()
    assert verdict.ok, verdict.json()["violations"]
    assert verdict.counts["acknowledged"] > 50, verdict.counts
    assert all(injected(c) > before[c] for c in before), before


async def test_a_failed_request_leaves_the_connection_usable(
    api: Api, base_url: str, chaos_off: None
) -> None:
    rule = {
        "component": "api",
        "target": "/v1/transfers",
        "failure_rate": 1.0,
        "types": ["service"],
    }
    assert (await put_chaos(api, {"enabled": True, "rules": [rule], "duration_s": 30})).is_success
    body = {"from_wallet_id": str(uuid.uuid4()), "to_wallet_id": str(uuid.uuid4()),
            "amount": "1.00", "currency": "USD", "description": "x" * 400}  # fmt: skip
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=5) as one:
        for _ in range(5):  # one keep-alive connection carries them all
            r = await one.post(
                "/v1/transfers",
                json=body,
                headers=api.auth() | {"Idempotency-Key": str(uuid.uuid4())},
            )
            assert r.status_code == 503
            assert r.headers["x-steadypay-chaos"] == "service"
