"""The CloudWatch exporter's aggregation, batching and bounded buffer, with a sender in memory
(the real PutMetricData against an emulator is in tests/integration/test_cloudwatch.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from prometheus_client import REGISTRY

from steadypay.observability.cloudwatch import (
    LATENCY_VALUES,
    MAX_DATUMS_PER_CALL,
    CloudWatchConfig,
    CloudWatchExporter,
    latency_step,
    status_class,
)

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


class Sender:
    def __init__(self) -> None:
        self.batches: list[list[Any]] = []
        self.error: Exception | None = None
        self.closed = False

    def send(self, namespace: str, batch: Sequence[Any]) -> None:
        if self.error is not None:
            raise self.error
        self.batches.append(list(batch))

    def close(self) -> None:
        self.closed = True


def exporter(sender: Sender, bound: int = 1000) -> CloudWatchExporter:
    config = CloudWatchConfig(namespace="Test", max_buffered_datums=bound)
    return CloudWatchExporter(config, sender, clock=lambda: NOW)


def dropped(reason: str) -> float:
    labels = {"reason": reason}
    return REGISTRY.get_sample_value("steadypay_cloudwatch_datapoints_dropped_total", labels) or 0


@pytest.mark.parametrize(
    ("status", "expected"), [(200, "2xx"), (201, "2xx"), (302, "3xx"), (404, "4xx"),
                             (503, "5xx"), (0, "other"), (999, "other")]
)  # fmt: skip
def test_status_dimension_is_the_class(status: int, expected: str) -> None:
    assert status_class(status) == expected


@pytest.mark.parametrize("ms", [0.2, 0.95, 1.0, 3.3, 12.0, 47.5, 250.0, 999.0, 4321.0, 60_000.0])
def test_latency_steps_are_within_five_percent(ms: float) -> None:
    value = LATENCY_VALUES[latency_step(ms / 1000)]
    assert abs(value - ms) / ms < 0.05


def test_latency_steps_fit_one_values_array() -> None:
    assert len(LATENCY_VALUES) == 150  # PutMetricData's limit per datum
    assert latency_step(0.0) == 0
    assert latency_step(10_000.0) == 149  # clamped: longer than 146 s


def test_collect_aggregates_per_service_and_status() -> None:
    sender = Sender()
    cw = exporter(sender)
    for ms in (10.0, 10.0, 20.0):
        cw.observe("api", "/v1/transfers", "POST", 201, ms / 1000)
    cw.observe("api", "/v1/transfers", "POST", 422, 0.005)
    cw.collect()
    by_key = {(d["MetricName"], tuple(x["Value"] for x in d["Dimensions"])): d for d in cw.pending}
    assert set(by_key) == {
        ("RequestCount", ("api", "2xx")),
        ("ResponseTime", ("api", "2xx")),
        ("RequestCount", ("api", "4xx")),
        ("ResponseTime", ("api", "4xx")),
    }
    count = by_key[("RequestCount", ("api", "2xx"))]
    assert count["Unit"] == "Count"
    assert count["StatisticValues"] == {"SampleCount": 3, "Sum": 3, "Minimum": 1, "Maximum": 1}
    latency = by_key[("ResponseTime", ("api", "2xx"))]
    assert latency["Unit"] == "Milliseconds"
    assert latency["Counts"] == [2.0, 1.0]
    assert latency["Values"] == [pytest.approx(10, rel=0.05), pytest.approx(20, rel=0.05)]
    assert latency["Timestamp"] == NOW
    cw.collect()  # an interval without requests adds nothing
    assert len(cw.pending) == 4


async def test_flush_sends_in_batches_within_the_api_limit() -> None:
    sender = Sender()
    cw = exporter(sender, bound=5000)
    for i in range(1200):  # 1200 services x 1 status: 2400 datums
        cw.observe(f"svc{i}", "/", "GET", 200, 0.001)
    await cw.flush()
    assert [len(b) for b in sender.batches] == [MAX_DATUMS_PER_CALL, MAX_DATUMS_PER_CALL, 400]
    assert not cw.pending


async def test_unreachable_keeps_the_newest_within_the_bound() -> None:
    sender = Sender()
    cw = exporter(sender, bound=4)
    sender.error = EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
    before = dropped("buffer_full")
    for interval in range(3):
        cw.observe("api", "/", "GET", 200, 0.001 * (interval + 1))
        await cw.flush()
    assert dropped("buffer_full") - before == 2  # 6 datums made, 4 kept
    kept = [d.get("Values") for d in cw.pending if d["MetricName"] == "ResponseTime"]
    assert kept == [[LATENCY_VALUES[latency_step(0.002)]], [LATENCY_VALUES[latency_step(0.003)]]]
    sender.error = None
    await cw.flush()  # back: the kept datums go, oldest first
    assert len(sender.batches) == 1
    assert len(sender.batches[0]) == 4
    assert not cw.pending


async def test_a_rejected_batch_is_dropped_not_retried_forever() -> None:
    sender = Sender()
    cw = exporter(sender)
    sender.error = ClientError(
        {"Error": {"Code": "InvalidParameterValue"}, "ResponseMetadata": {"HTTPStatusCode": 400}},
        "PutMetricData",
    )
    before = dropped("rejected")
    cw.observe("api", "/", "GET", 200, 0.001)
    await cw.flush()
    assert dropped("rejected") - before == 2
    assert not cw.pending


async def test_stop_flushes_what_was_observed_and_closes_the_client() -> None:
    sender = Sender()
    cw = CloudWatchExporter(CloudWatchConfig(namespace="Test", flush_interval_s=3600), sender)
    await cw.start()
    cw.observe("fraud", "/check-fraud", "POST", 200, 0.003)
    await cw.stop()
    assert [d["MetricName"] for b in sender.batches for d in b] == ["RequestCount", "ResponseTime"]
    assert sender.closed
