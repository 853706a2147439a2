"""/health/ready in the IETF health-check format, through real outages; the state metrics.

The tests run the API on a fresh migrated database of their own (a known, empty outbox and no
recorded ledger check), with the fraud and notification services down (the session's dead
ports). The database outage is real: a TCP proxy between the API and PostgreSQL is cut.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy.engine import make_url
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from steadypay import bootstrap
from steadypay.bootstrap.api import create_app
from steadypay.chaos.proxy import FaultProxy
from steadypay.cli.ledger import run_check
from steadypay.config import Settings
from steadypay.errors import CircuitOpenError, DependencyFailure
from steadypay.outbox import OutboxRelay
from steadypay.resilience.client import ReliableServiceClient
from steadypay.resilience.pipeline import Pipeline, PipelineConfig
from tests.api_client import Api
from tests.conftest import fresh_database
from tests.integration.conftest import ADMIN_KEY, serve

HEALTH_JSON = "application/health+json"
CHECK_FIELDS = {"componentType", "status", "observedValue", "time"}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def health_database_url(pg_server_url: str) -> Iterator[str]:
    with fresh_database(pg_server_url, "steadypay_health") as url:
        yield url


@pytest.fixture(scope="module")
def health_settings(settings: Settings, health_database_url: str) -> Settings:
    return settings.model_copy(
        update={
            "database_url": SecretStr(health_database_url),
            "db_pool_min_size": 1,
            "db_pool_max_size": 5,
            "health_check_timeout_s": 0.5,
        }
    )


@asynccontextmanager
async def running_api(settings: Settings) -> AsyncIterator[tuple[Api, bootstrap.Container]]:
    container = await bootstrap.build(settings)
    try:
        async with (
            serve(create_app(settings, container)) as url,
            httpx.AsyncClient(base_url=url, timeout=10.0) as http,
        ):
            yield Api(http, ADMIN_KEY), container
    finally:
        await container.close()


def assert_health_json(response: httpx.Response, service_id: str) -> dict[str, Any]:
    """The draft's shape: status, version, serviceId, description, checks as lists."""
    assert response.headers["content-type"] == HEALTH_JSON
    body: dict[str, Any] = response.json()
    assert body["status"] in {"pass", "warn", "fail"}
    assert body["serviceId"] == service_id
    assert isinstance(body["version"], str)
    assert body["version"]
    assert isinstance(body["description"], str)
    assert body["description"]
    for key, entries in body["checks"].items():
        component, _, measurement = key.partition(":")
        assert component, key
        assert measurement, key
        assert isinstance(entries, list), key
        assert entries, key
        for entry in entries:
            assert set(entry) >= CHECK_FIELDS, (key, entry)
            assert entry["status"] in {"pass", "warn", "fail"}
            at = datetime.fromisoformat(entry["time"])  # RFC 3339
            assert abs(datetime.now(UTC) - at) < timedelta(minutes=1)
            if entry["status"] != "pass":
                assert entry["output"], (key, entry)
    statuses = {e["status"] for entries in body["checks"].values() for e in entries}
    worst = next(s for s in ("fail", "warn", "pass") if s in statuses | {"pass"})
    assert body["status"] == worst
    return body


def check(body: dict[str, Any], key: str) -> dict[str, Any]:
    [entry] = body["checks"][key]
    found: dict[str, Any] = entry
    return found


async def scrape(api: Api) -> Samples:
    r = await api.http.get("/metrics")
    assert r.status_code == 200
    found: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


# --- /health/ready --------------------------------------------------------------------------


async def test_ready_is_ietf_health_json(health_settings: Settings) -> None:
    async with running_api(health_settings) as (api, _):
        assert (await api.http.get("/health/live")).status_code == 200
        r = await api.http.get("/health/ready")
        assert r.status_code == 200
        body = assert_health_json(r, "steadypay-api")
        assert body["status"] == "pass"
        assert set(body["checks"]) == {
            "postgresql:responseTime", "postgresql:connections", "outbox:backlog",
            "outbox:oldestPendingAge", "fraud:circuit", "notifications:circuit",
        }  # fmt: skip
        pg = check(body, "postgresql:responseTime")
        assert (pg["componentType"], pg["observedUnit"]) == ("datastore", "ms")
        assert 0 < pg["observedValue"] < 500
        assert check(body, "fraud:circuit")["observedValue"] == "closed"
        assert check(body, "outbox:backlog")["observedValue"] == 0
        age = check(body, "outbox:oldestPendingAge")
        assert (age["observedValue"], age["observedUnit"]) == (0, "s")
        pool = check(body, "postgresql:connections")
        assert 0 <= pool["observedValue"] <= 5


async def test_database_down_is_503_fail_and_live_stays_200(health_settings: Settings) -> None:
    url = make_url(health_settings.require_database_url())
    async with FaultProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        settings = health_settings.model_copy(
            update={
                "database_url": SecretStr(proxied),
                "db_connect_timeout_s": 1.0,
                "db_acquire_timeout_s": 1.0,
            }
        )
        async with running_api(settings) as (api, _):
            assert (await api.http.get("/health/ready")).status_code == 200
            await proxy.down()

            started = time.perf_counter()
            r = await api.http.get("/health/ready")
            elapsed = time.perf_counter() - started
            assert r.status_code == 503
            assert r.headers["Retry-After"]
            body = assert_health_json(r, "steadypay-api")
            assert body["status"] == "fail"
            pg = check(body, "postgresql:responseTime")
            assert pg["status"] == "fail"
            assert check(body, "outbox:backlog")["status"] == "warn"  # not critical itself
            assert elapsed < 3.0  # every check is bounded (0.5 s each, run at once)

            live = await api.http.get("/health/live")
            assert live.status_code == 200
            samples = await scrape(api)  # /metrics answers with the database down
            latency = value(
                samples, "steadypay_probe_latency_seconds", service="api", component="postgresql"
            )
            assert latency is not None
            assert math.isnan(latency)

            await proxy.up()
            for _ in range(50):
                r = await api.http.get("/health/ready")
                if r.status_code == 200:
                    break
                await asyncio.sleep(0.1)
            assert r.status_code == 200, r.text
            assert check(r.json(), "postgresql:responseTime")["status"] == "pass"


async def open_fraud_circuit(container: bootstrap.Container) -> None:
    """Call the (dead) fraud service until its breaker opens."""
    client = container.dependencies["fraud"]
    for _ in range(100):
        try:
            await client.post("/check-fraud", json={})
        except CircuitOpenError:
            return
        except DependencyFailure:
            continue
    raise AssertionError("the fraud circuit never opened")


async def test_fraud_down_is_200_warn(health_settings: Settings) -> None:
    async with running_api(health_settings) as (api, container):
        await open_fraud_circuit(container)
        r = await api.http.get("/health/ready")
        assert r.status_code == 200
        body = assert_health_json(r, "steadypay-api")
        assert body["status"] == "warn"
        fraud = check(body, "fraud:circuit")
        assert (fraud["status"], fraud["observedValue"]) == ("warn", "open")
        assert "next trial call in" in fraud["output"]
        assert check(body, "postgresql:responseTime")["status"] == "pass"


# --- metrics --------------------------------------------------------------------------------


class Accepting:
    """A notification service that accepts every event."""

    def __init__(self) -> None:
        self.received = 0

    async def events(self, _: Request) -> JSONResponse:
        self.received += 1
        return JSONResponse({}, status_code=202)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/events", self.events, methods=["POST"])])


async def outbox_counts(url: str) -> tuple[int, float | None]:
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS n, extract(epoch FROM now() - min(created_at))::float8 AS age"
            " FROM outbox_events WHERE status = 'pending'"
        )
    finally:
        await conn.close()
    assert row is not None
    return row["n"], row["age"]


async def test_state_metrics_after_a_scripted_run(
    health_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = health_settings.require_database_url()
    async with running_api(health_settings) as (api, container):
        before = await scrape(api)
        # a fresh database: no ledger check recorded yet -> -1, never 0
        assert value(before, "steadypay_ledger_check_violations") == -1
        assert value(before, "steadypay_ledger_check_timestamp_seconds") in {None, 0}

        _, alice = await api.funded_wallet("20000.00")
        _, bob = await api.funded_wallet("")
        assert (await api.transfer(alice["id"], bob["id"], "12.50")).status_code == 201
        held = await api.transfer(alice["id"], bob["id"], "11000.00")  # fraud down: fallback
        assert held.json()["status"] == "pending_review", held.text
        assert await asyncio.to_thread(run_check, health_settings, tmp_path, as_json=True)
        capsys.readouterr()

        pending, oldest = await outbox_counts(url)
        assert pending > 0  # the notification service is down: events wait
        after = await scrape(api)
        names = {name for name, _ in after}
        assert value(after, "steadypay_holds_open") == 1
        assert value(after, "steadypay_holds_open_amount_minor", currency="USD") == 1_100_000
        assert value(after, "steadypay_ledger_check_violations") == 0
        checked_at = value(after, "steadypay_ledger_check_timestamp_seconds")
        assert checked_at is not None
        assert abs(time.time() - checked_at) < 60
        assert value(after, "steadypay_outbox_pending") == pending
        assert value(after, "steadypay_outbox_dead") == 0
        age = value(after, "steadypay_outbox_oldest_pending_age_seconds")
        assert oldest is not None
        assert age is not None
        assert oldest - 1 <= age <= oldest + 5
        for state in ("in_use", "idle", "waiting"):
            found = value(after, "steadypay_db_pool_connections", service="api", state=state)
            assert found is not None, state
            assert found >= 0, state
        size_max = value(after, "steadypay_db_pool_size_max", service="api")
        assert size_max is not None
        assert size_max >= 5
        latency = value(
            after, "steadypay_probe_latency_seconds", service="api", component="postgresql"
        )
        assert latency is not None
        assert 0 < latency < 1

        # the relay delivers every pending event: attempts counted, the backlog gauge drops
        receiver = Accepting()
        async with serve(receiver.app()) as notifications:
            config = PipelineConfig(total_timeout_s=2.0, attempt_timeout_s=1.0, max_attempts=1)
            client = ReliableServiceClient(notifications, Pipeline("notifications", config))
            try:
                stats = await OutboxRelay(container.db, client).run_once()
            finally:
                await client.aclose()
        assert stats.delivered == pending == receiver.received
        final = await scrape(api)
        attempts = "steadypay_outbox_delivery_attempts_total"
        delivered = (value(final, attempts, outcome="delivered") or 0) - (
            value(before, attempts, outcome="delivered") or 0
        )
        assert delivered == pending
        assert value(final, "steadypay_outbox_pending") == 0
        assert value(final, "steadypay_outbox_oldest_pending_age_seconds") == 0
        assert {
            "steadypay_holds_open", "steadypay_holds_open_amount_minor",
            "steadypay_ledger_check_violations", "steadypay_outbox_pending",
            "steadypay_outbox_oldest_pending_age_seconds", "steadypay_outbox_dead",
            "steadypay_db_pool_connections", "steadypay_db_pool_size_max",
            "steadypay_probe_latency_seconds",
        } <= names  # fmt: skip
        assert attempts in {name for name, _ in final}


def test_every_state_metric_is_a_module_level_object() -> None:
    names = set(REGISTRY._names_to_collectors)
    assert {
        "steadypay_holds_open", "steadypay_holds_open_amount_minor",
        "steadypay_ledger_check_violations", "steadypay_outbox_pending",
        "steadypay_outbox_oldest_pending_age_seconds", "steadypay_outbox_dead",
        "steadypay_outbox_delivery_attempts_total", "steadypay_db_pool_connections",
        "steadypay_db_pool_size_max", "steadypay_probe_latency_seconds",
    } <= names  # fmt: skip
