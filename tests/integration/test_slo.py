"""SLI rollups in PostgreSQL and GET /v1/admin/slo, over real HTTP on loopback.

Each test records under its own service prefix (``STEADYPAY_SLI_SERVICE_PREFIX``), so the
session's other traffic, which the shared app also records as ``api``, does not interfere."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse, Response
from prometheus_client import REGISTRY

from steadypay import bootstrap
from steadypay.bootstrap.api import create_app
from steadypay.bootstrap.fraud import create_fraud_app
from steadypay.bootstrap.notifications import create_notification_app
from steadypay.config import Settings
from steadypay.db.pool import create_database
from steadypay.observability.sli import SliRecorder
from steadypay.observability.slo import LATENCY_BOUNDS_MS
from tests.api_client import Api
from tests.integration.conftest import ADMIN_KEY, serve

REQUESTS = 1000
FAIL_EVERY = 40  # every 40th request answers 503: 2.5% injected failures
NOT_FOUND_EVERY = 7  # 4xx are successes
SLOW = 2  # requests slower than the request timeout: failures too (timeouts)
SLOW_S = 1.2
REQUEST_TIMEOUT_MS = 1000


def prefixed(settings: Settings, **extra: Any) -> Settings:
    prefix = f"t{secrets.token_hex(4)}-"
    return settings.model_copy(update={"sli_service_prefix": prefix, **extra})


def add_flaky_route(app: FastAPI) -> None:
    """Test-only: a route answering 503 to exactly every FAIL_EVERY-th call, 404 to every
    NOT_FOUND_EVERY-th otherwise; a call asking to sleep just sleeps and answers 200."""
    calls = 0

    @app.get("/test/flaky")
    async def flaky(sleep_s: float = Query(0.0)) -> Response:
        nonlocal calls
        if sleep_s:
            await asyncio.sleep(sleep_s)
            return JSONResponse({"slow": True})
        calls += 1
        if calls % FAIL_EVERY == 0:
            return JSONResponse({"injected": True}, 503)
        if calls % NOT_FOUND_EVERY == 0:
            return JSONResponse({"missing": True}, 404)
        return JSONResponse({"ok": True})


@pytest.fixture
async def flaky_api(settings: Settings) -> AsyncIterator[tuple[Api, Settings]]:
    own = prefixed(settings, sli_request_timeout_ms=REQUEST_TIMEOUT_MS, sli_flush_interval_s=3600.0)
    app = create_app(own)  # its own container, built from these settings in the lifespan
    add_flaky_route(app)
    async with (
        serve(app) as url,
        httpx.AsyncClient(base_url=url, timeout=30.0) as http,
    ):
        yield Api(http, ADMIN_KEY), own


async def test_availability_matches_the_injected_failure_fraction(
    flaky_api: tuple[Api, Settings],
) -> None:
    api, own = flaky_api
    slow = asyncio.gather(
        *(api.http.get("/test/flaky", params={"sleep_s": SLOW_S}) for _ in range(SLOW))
    )
    statuses: list[int] = []
    for chunk in range(0, REQUESTS - SLOW, 50):  # 50 in flight at a time
        size = min(50, REQUESTS - SLOW - chunk)
        done = await asyncio.gather(*(api.http.get("/test/flaky") for _ in range(size)))
        statuses += [r.status_code for r in done]
    assert [r.status_code for r in await slow] == [200] * SLOW
    injected = statuses.count(503)
    assert injected == (REQUESTS - SLOW) // FAIL_EVERY
    assert statuses.count(404) > 100  # 4xx: successes
    for _ in range(3):  # probes and scrapes are not user traffic
        assert (await api.http.get("/health/live")).status_code == 200
        assert (await api.http.get("/metrics")).status_code == 200

    r = await api.get("/v1/admin/slo", window="1h")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["service"] == own.sli_service_prefix + "api"
    assert body["status"] == "ok"
    assert body["window"] == "1h"
    assert body["objective"] == 0.999
    # This worker flushed before answering: every request is there, the probes are not.
    assert body["requests"]["total"] == REQUESTS
    assert body["requests"]["timeouts"] == SLOW
    failed = injected + SLOW  # the 503s, and the requests slower than the timeout
    assert body["requests"]["failed"] == failed
    assert abs(body["availability"] - (1 - failed / REQUESTS)) < 0.001  # within 0.1 pp
    assert body["availability"] == pytest.approx(1 - failed / REQUESTS, abs=1e-6)

    # latency SLI: the slow ones are over 300 ms; the fast ones normally under
    latency = body["latency"]
    assert latency["threshold_ms"] == 300
    assert REQUESTS - SLOW - 20 <= latency["within_threshold"] <= REQUESTS - SLOW
    assert latency["sli"] == pytest.approx(latency["within_threshold"] / REQUESTS, abs=1e-6)

    # error budget: 0.1% of 1000 = 1 allowed failure, ~27 consumed → deeply negative
    budget = body["error_budget"]
    assert budget["allowed_failures"] == pytest.approx(1.0)
    assert budget["consumed_failures"] == failed
    assert budget["remaining_fraction"] == pytest.approx(1 - failed, abs=1e-3)

    # burn rates: all the traffic is in the last minutes, so every window sees the same rate
    rate = (failed / REQUESTS) / 0.001
    pairs = {(p["long_window"], p["short_window"]): p for p in body["burn_rates"]}
    assert set(pairs) == {("1h", "5m"), ("6h", "30m"), ("3d", "6h")}
    for pair in pairs.values():
        assert pair["status"] == "ok"
        assert pair["long"]["burn_rate"] == pytest.approx(rate, rel=1e-4)
        assert pair["short"]["burn_rate"] == pytest.approx(rate, rel=1e-4)
        assert pair["alerting"] is (rate > pair["threshold"])
    assert pairs[("1h", "5m")]["alerting"] is True  # 27x > 14.4

    # the 30-day window holds the same requests, plus the admin GET above once the middleware
    # has recorded it (after its response was sent)
    again = (await api.get("/v1/admin/slo", window="30d")).json()
    assert again["requests"]["total"] in (REQUESTS, REQUESTS + 1)
    assert again["requests"]["failed"] == failed


async def test_an_empty_window_or_service_is_no_data_not_100_percent(api: Api) -> None:
    r = await api.get("/v1/admin/slo", window="1d", service=f"nobody-{secrets.token_hex(4)}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "no_data"
    assert body["requests"] == {"total": 0, "failed": 0, "timeouts": 0}
    assert body["availability"] is None
    assert body["latency"]["sli"] is None
    assert body["error_budget"]["remaining_fraction"] is None
    for pair in body["burn_rates"]:
        assert pair["status"] == "no_data"
        assert pair["long"]["burn_rate"] is None
        assert pair["alerting"] is False


async def test_slo_is_admin_only_and_validates_its_window(api: Api) -> None:
    r = await api.get("/v1/admin/slo", window="2h")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "validation_error"
    assert r.json()["error"]["param"] == "window"
    r = await api.get("/v1/admin/slo", service="no spaces allowed")
    assert r.status_code == 400
    user = await api.user()
    r = await api.get("/v1/admin/slo", key=user["api_key"])
    assert r.status_code == 403
    r = await api.http.get("/v1/admin/slo")
    assert r.status_code == 401


async def _row(container: bootstrap.Container, service: str) -> Any:
    async with container.db.connection() as conn:
        return await conn.fetch(
            "SELECT * FROM observability.sli_minutes WHERE service = $1 ORDER BY minute", service
        )


async def test_workers_add_to_the_same_row_element_wise(container: bootstrap.Container) -> None:
    service = f"w{secrets.token_hex(4)}"
    minute = datetime(2026, 1, 1, 12, 0, tzinfo=UTC).timestamp()
    workers = [SliRecorder(request_timeout_s=5.0, clock=lambda: minute + 30) for _ in range(2)]
    durations = [0.004, 0.3, 0.301, 7.0, 31.0]  # ≤5 ms, ≤300 ms, ≤500 ms, timeout, over all
    for worker in workers:
        for d in durations:
            worker.observe(service, "/v1/x", "GET", 200, d)
        worker.observe(service, "/v1/x", "GET", 502, 0.001)
        worker.observe(service, "/v1/x", "GET", 429, 0.001)
    assert all(await asyncio.gather(*(w.flush(container.db) for w in workers)))
    rows = await _row(container, service)
    assert len(rows) == 1
    row = rows[0]
    assert row["minute"] == datetime.fromtimestamp(minute, UTC)
    assert (row["total"], row["failures"], row["timeouts"]) == (14, 6, 4)
    assert list(row["latency_le_ms"]) == list(LATENCY_BOUNDS_MS)
    counts = dict(zip(row["latency_le_ms"], row["latency_counts"], strict=True))
    assert [counts[5], counts[300], counts[500], counts[10000]] == [6, 2, 2, 2]
    assert sum(row["latency_counts"]) == 12  # the two 31 s requests are over every bound
    assert workers[0].pending_minutes == 0


async def test_a_database_outage_keeps_minutes_up_to_a_bound_then_counts_drops(
    settings: Settings, container: bootstrap.Container
) -> None:
    service = f"d{secrets.token_hex(4)}"
    now = [datetime(2026, 2, 1, tzinfo=UTC).timestamp()]
    recorder = SliRecorder(request_timeout_s=5.0, max_pending_minutes=3, clock=lambda: now[0])
    down = await create_database(settings.require_database_url(), bootstrap.pool_options(settings))
    await down.close()  # a pool that cannot give a connection: the database is "down"

    def dropped() -> float:
        value = REGISTRY.get_sample_value(
            "steadypay_sli_dropped_minutes_total", {"service": service}
        )
        return value or 0.0

    for _ in range(5):
        recorder.observe(service, "/v1/x", "GET", 200, 0.01)
        recorder.observe(service, "/v1/x", "GET", 500, 0.01)
        assert await recorder.flush(down) is False  # never raises; the data stays
        now[0] += 60
    assert recorder.pending_minutes == 3
    assert dropped() == 2  # the two oldest minutes
    recorder.observe(service, "/v1/x", "GET", 200, 0.01)  # newest minute
    assert dropped() == 3
    assert await recorder.flush(container.db) is True
    rows = await _row(container, service)
    assert [r["total"] for r in rows] == [2, 2, 1]
    assert [r["failures"] for r in rows] == [1, 1, 0]


@pytest.mark.parametrize("which", ["fraud", "notifications"])
async def test_fraud_and_notification_services_record_and_flush_at_shutdown(
    settings: Settings, container: bootstrap.Container, which: str
) -> None:
    own = prefixed(settings, sli_flush_interval_s=3600.0)  # only the shutdown flush writes
    app = create_fraud_app(own) if which == "fraud" else create_notification_app(own)
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=10.0) as http:
        for _ in range(3):
            assert (await http.get("/health/live")).status_code == 200
        for _ in range(5):
            assert (await http.get("/no-such-route")).status_code == 404
        assert await _row(container, own.sli_service_prefix + which) == []
    rows = await _row(container, own.sli_service_prefix + which)
    assert sum(r["total"] for r in rows) == 5
    assert sum(r["failures"] for r in rows) == 0
