"""SLO arithmetic (availability, budget, burn rates, no data) and what the SLI recorder counts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from steadypay.observability.sli import SliRecorder, excluded
from steadypay.observability.slo import (
    BURN_RATE_PAIRS,
    LATENCY_BOUNDS_MS,
    WindowCounts,
    burn_rate,
    slo_report,
    windows_for,
)

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
EMPTY = WindowCounts()


def report(window: str = "1h", objective: float = 0.999, **counts: WindowCounts) -> dict:  # type: ignore[type-arg]
    every = dict.fromkeys(windows_for(window), EMPTY) | counts
    return slo_report(
        window=window,
        service="api",
        objective=objective,
        latency_threshold_ms=300,
        counts=every,
        now=NOW,
    )


def test_no_data_is_reported_as_no_data_never_as_100_percent() -> None:
    body = report()
    assert body["status"] == "no_data"
    assert body["availability"] is None
    assert body["latency"]["sli"] is None
    assert body["error_budget"] == {
        "allowed_failures": 0.0,
        "consumed_failures": 0,
        "consumed_fraction": None,
        "remaining_fraction": None,
    }
    assert [p["status"] for p in body["burn_rates"]] == ["no_data"] * 3
    assert not any(p["alerting"] for p in body["burn_rates"])
    assert burn_rate(EMPTY, 0.999) is None


def test_availability_budget_and_latency_of_a_window() -> None:
    day = WindowCounts(total=10_000, failed=4, timeouts=1, within_latency=9_900)
    body = report("1d", **{"1d": day})
    assert body["status"] == "ok"
    assert body["availability"] == pytest.approx(0.9996)
    assert body["latency"] == {"threshold_ms": 300, "within_threshold": 9_900, "sli": 0.99}
    budget = body["error_budget"]
    assert budget["allowed_failures"] == pytest.approx(10.0)  # 0.1% of 10 000
    assert budget["consumed_fraction"] == pytest.approx(0.4)
    assert budget["remaining_fraction"] == pytest.approx(0.6)
    assert body["start"] == "2026-11-23T12:00:00+00:00"
    assert body["end"] == "2026-11-24T12:00:00+00:00"


def test_an_overspent_budget_goes_negative() -> None:
    body = report(**{"1h": WindowCounts(total=1_000, failed=3)})
    assert body["error_budget"]["allowed_failures"] == pytest.approx(1.0)
    assert body["error_budget"]["remaining_fraction"] == pytest.approx(-2.0)


def test_burn_rate_is_the_error_rate_over_the_budgeted_rate() -> None:
    assert burn_rate(WindowCounts(total=1_000, failed=1), 0.999) == pytest.approx(1.0)
    assert burn_rate(WindowCounts(total=1_000, failed=0), 0.999) == 0.0
    assert burn_rate(WindowCounts(total=100, failed=1), 0.99) == pytest.approx(1.0)
    assert burn_rate(WindowCounts(total=200, failed=3), 0.999) == pytest.approx(15.0)


def _pair(body: dict, long: str) -> dict:  # type: ignore[type-arg]
    return next(p for p in body["burn_rates"] if p["long_window"] == long)


def test_the_sre_workbook_pairs_and_thresholds() -> None:
    assert [(p.long, p.short, p.threshold, p.severity) for p in BURN_RATE_PAIRS] == [
        ("1h", "5m", 14.4, "page"),
        ("6h", "30m", 6.0, "page"),
        ("3d", "6h", 1.0, "ticket"),
    ]
    assert set(windows_for("30d")) == {"5m", "30m", "1h", "6h", "3d", "30d"}


def test_a_pair_alerts_only_when_both_windows_burn_above_the_threshold() -> None:
    fast = WindowCounts(total=1_000, failed=15)  # 15x
    slow = WindowCounts(total=1_000, failed=14)  # 14x
    both = report(**{"1h": fast, "5m": fast})
    assert _pair(both, "1h")["alerting"] is True
    assert _pair(both, "1h")["long"]["burn_rate"] == pytest.approx(15.0)
    only_short = report(**{"1h": slow, "5m": fast})
    assert _pair(only_short, "1h")["alerting"] is False  # the long window says it is over
    only_long = report(**{"1h": fast, "5m": slow})
    assert _pair(only_long, "1h")["alerting"] is False  # the short window says it is over
    exactly = WindowCounts(total=1_000, failed=6)  # 6x: not *above* 6
    assert _pair(report(**{"6h": exactly, "30m": exactly}), "6h")["alerting"] is False
    ticket = WindowCounts(total=10_000, failed=11)  # 1.1x
    assert _pair(report(**{"3d": ticket, "6h": ticket}), "3d")["alerting"] is True


def test_a_pair_with_one_empty_window_is_no_data_and_does_not_alert() -> None:
    body = report(**{"1h": WindowCounts(total=100, failed=100)})
    pair = _pair(body, "1h")
    assert pair["status"] == "no_data"
    assert pair["long"]["burn_rate"] == pytest.approx(1000.0)
    assert pair["short"]["burn_rate"] is None
    assert pair["short"]["status"] == "no_data"
    assert pair["alerting"] is False


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_recorder_counts_failures_timeouts_and_buckets() -> None:
    clock = Clock(NOW.timestamp() + 59.9)
    r = SliRecorder(request_timeout_s=1.0, clock=clock)
    r.observe("api", "/v1/transfers", "POST", 201, 0.005)  # exactly a bound: in it
    r.observe("api", "/v1/transfers", "POST", 422, 0.0051)  # 4xx: a success
    r.observe("api", "/v1/transfers", "POST", 503, 0.02)
    r.observe("api", "/v1/transfers", "POST", 200, 1.5)  # too slow: a timeout failure
    r.observe("api", "/v1/transfers", "POST", 500, 1.5)  # one failure, one timeout
    r.observe("api", "/v1/transfers", "POST", 200, 99.0)  # over every bound
    r.observe("api", "/health/ready", "GET", 503, 0.001)  # probes are not counted
    r.observe("api", "/metrics", "GET", 200, 0.001)
    clock.t += 0.2  # the next minute: a new row
    r.observe("api", "unmatched", "GET", 404, 0.001)
    assert r.pending_minutes == 2
    first = r._pending[("api", int(NOW.timestamp()))]
    assert (first.total, first.failures, first.timeouts) == (6, 4, 3)
    counts = dict(zip(LATENCY_BOUNDS_MS, first.counts, strict=True))
    assert [counts[5], counts[10], counts[25], counts[2000]] == [1, 1, 1, 2]
    assert sum(first.counts) == 5


def test_probe_routes_are_excluded() -> None:
    for route in ("/health/live", "/health/ready", "/health", "/metrics"):
        assert excluded(route)
    for route in ("/v1/transfers", "unmatched", "/healthy-looking/v1", "/metrics/x"):
        assert not excluded(route)


def test_prefix_names_the_service() -> None:
    r = SliRecorder(request_timeout_s=1.0, prefix="staging-", clock=Clock(0.0))
    r.observe("fraud", "/check-fraud", "POST", 200, 0.01)
    assert list(r._pending) == [("staging-fraud", 0)]
