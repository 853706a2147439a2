"""CloudWatch export against a real AWS emulator (moto's server, started here) over loopback:
the API's request metrics arrive and sum to the requests made; with CloudWatch gone or hanging,
transfers keep succeeding at their usual speed and the dropped datums are counted."""

from __future__ import annotations

import asyncio
import collections
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from steadypay import bootstrap
from steadypay.bootstrap.api import create_app
from steadypay.bootstrap.fraud import create_fraud_app
from steadypay.bootstrap.notifications import create_notification_app
from steadypay.config import Settings
from steadypay.observability.cloudwatch import status_class
from tests.api_client import Api
from tests.integration.conftest import ADMIN_KEY, serve
from tests.moto_server import MotoServer, aws_env


@pytest.fixture
def moto(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path / "moto")
    server.start()
    aws_env(monkeypatch, server.url, tmp_path)
    try:
        yield server
    finally:
        server.stop()


def exporting(settings: Settings, **overrides: Any) -> Settings:
    namespace = f"Steadypay/Test{time.monotonic_ns()}"
    return settings.model_copy(update={"cloudwatch_namespace": namespace, **overrides})


async def counter(http: httpx.AsyncClient, name: str, **labels: str) -> float:
    """A counter's value as this service's /metrics shows it."""
    text = (await http.get("/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def statistics(
    namespace: str, metric: str, status: str, since: datetime, service: str = "api"
) -> dict[str, float]:
    """Sum, SampleCount, Minimum and Maximum of ``metric`` for one service and status class,
    read back with GetMetricStatistics."""
    client = boto3.client("cloudwatch")
    try:
        answer = client.get_metric_statistics(
            Namespace=namespace,
            MetricName=metric,
            Dimensions=[
                {"Name": "Service", "Value": service},
                {"Name": "Status", "Value": status},
            ],
            StartTime=since - timedelta(minutes=2),
            EndTime=datetime.now(UTC) + timedelta(minutes=2),
            Period=60,
            Statistics=["Sum", "SampleCount", "Minimum", "Maximum"],
        )
        points = answer["Datapoints"]
        return {
            "Sum": sum(p.get("Sum", 0.0) for p in points),
            "SampleCount": sum(p.get("SampleCount", 0.0) for p in points),
            "Minimum": min((p.get("Minimum", 0.0) for p in points), default=0.0),
            "Maximum": max((p.get("Maximum", 0.0) for p in points), default=0.0),
        }
    finally:
        client.close()


def statuses_exported(namespace: str) -> set[str]:
    client = boto3.client("cloudwatch")
    try:
        metrics = client.list_metrics(Namespace=namespace, MetricName="RequestCount")["Metrics"]
    finally:
        client.close()
    return {d["Value"] for m in metrics for d in m.get("Dimensions", []) if d["Name"] == "Status"}


async def test_request_metrics_arrive_in_cloudwatch(
    settings: Settings, container: bootstrap.Container, moto: MotoServer
) -> None:
    config = exporting(settings, cloudwatch_flush_interval_s=0.2)
    namespace = config.cloudwatch_namespace
    assert namespace is not None
    answered: collections.Counter[str] = collections.Counter()

    async def tally(response: httpx.Response) -> None:  # every answer, /metrics's too
        answered[status_class(response.status_code)] += 1

    since = datetime.now(UTC)
    async with (
        serve(create_app(config, container)) as url,
        httpx.AsyncClient(base_url=url, timeout=10.0, event_hooks={"response": [tally]}) as http,
    ):
        api = Api(http, ADMIN_KEY)
        sent_before = await counter(http, "steadypay_cloudwatch_datapoints_sent_total")
        _, a = await api.funded_wallet("10.00")
        _, b = await api.funded_wallet(amount="")
        for _ in range(5):
            assert (await api.transfer(a["id"], b["id"], "1.00")).status_code == 201
        assert (await api.transfer(a["id"], b["id"], "999.00")).status_code == 422
        assert (await api.get("/v1/no-such-route")).status_code == 404
        # the background task sends while the service runs, not only at shutdown
        for _ in range(100):
            if await counter(http, "steadypay_cloudwatch_datapoints_sent_total") > sent_before:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("no datum was sent while the service was running")
    # the lifespan's final flush has sent the rest
    # 10 answers of 201 (2 users, 2 wallets, 1 deposit, 5 transfers) and the /metrics reads
    assert set(answered) == {"2xx", "4xx"}, answered
    assert answered["4xx"] == 2, answered
    assert answered["2xx"] >= 11, answered

    assert await asyncio.to_thread(statuses_exported, namespace) == set(answered)
    for status, requests in answered.items():
        count = await asyncio.to_thread(statistics, namespace, "RequestCount", status, since)
        assert count["Sum"] == requests, (status, count)
        assert count["SampleCount"] == requests, (status, count)
        latency = await asyncio.to_thread(statistics, namespace, "ResponseTime", status, since)
        assert latency["SampleCount"] == requests, (status, latency)
        assert 0 < latency["Minimum"] <= latency["Maximum"] < 10_000, (status, latency)


class BlackHole:
    """A listening socket that never accepts: connections hang until botocore's timeouts."""

    def __init__(self, port: int) -> None:
        self.socket = socket.socket()
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", port))
        self.socket.listen(1)

    def close(self) -> None:
        self.socket.close()


@pytest.mark.parametrize("outage", ["stopped", "hanging"])
async def test_payments_unaffected_when_cloudwatch_is_down(
    settings: Settings, container: bootstrap.Container, moto: MotoServer, outage: str
) -> None:
    moto.stop()
    hole = BlackHole(moto.port) if outage == "hanging" else None
    timeout_s = 1.0
    config = exporting(
        settings,
        cloudwatch_flush_interval_s=0.05,
        cloudwatch_max_buffered_datums=2,  # one interval of 2xx traffic: RequestCount, ResponseTime
        cloudwatch_timeout_s=timeout_s,
        cloudwatch_shutdown_timeout_s=0.5,
    )
    try:
        latencies: list[float] = []
        async with serve(create_app(config, container)) as url:
            async with httpx.AsyncClient(base_url=url, timeout=10.0) as http:
                api = Api(http, ADMIN_KEY)
                name = "steadypay_cloudwatch_datapoints_dropped_total"
                dropped_before = await counter(http, name, reason="buffer_full")
                _, a = await api.funded_wallet("100.00")
                _, b = await api.funded_wallet(amount="")
                deadline = time.monotonic() + 8 * timeout_s
                while await counter(http, name, reason="buffer_full") == dropped_before:
                    assert time.monotonic() < deadline, "no datum was dropped"
                    started = time.perf_counter()
                    r = await api.transfer(a["id"], b["id"], "0.01")
                    latencies.append(time.perf_counter() - started)
                    assert r.status_code == 201, r.text
                    await asyncio.sleep(0.02)
            stopping = time.monotonic()
        # the final flush gave up after cloudwatch_shutdown_timeout_s, not the call timeouts
        assert time.monotonic() - stopping < 0.5 + 1.5
    finally:
        if hole is not None:
            hole.close()
    assert latencies
    # a CloudWatch call blocking the event loop would cost a transfer up to 2 x timeout_s
    assert max(latencies) < timeout_s * 0.8, sorted(latencies)[-3:]


@pytest.mark.parametrize("service", ["fraud", "notifications"])
async def test_the_other_services_export_too(
    settings: Settings, moto: MotoServer, service: str
) -> None:
    config = exporting(settings, cloudwatch_flush_interval_s=3600)  # only the final flush
    namespace = config.cloudwatch_namespace
    assert namespace is not None
    app = create_fraud_app(config) if service == "fraud" else create_notification_app(config)
    since = datetime.now(UTC)
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=10.0) as http:
        for _ in range(3):
            assert (await http.get("/health/live")).status_code == 200
    count = await asyncio.to_thread(
        statistics, namespace, "RequestCount", "2xx", since, service=service
    )
    assert count["Sum"] == 3, count
