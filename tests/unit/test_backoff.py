"""The one backoff (steadypay.resilience.retry) and the loops that use it."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from steadypay.cli.supervisor import ChildSpec, Supervisor
from steadypay.cli.up import PostgresWatchdog
from steadypay.db.embedded import EmbeddedPostgresError
from steadypay.errors import DatabaseUnavailable
from steadypay.ledger.service import RetryPolicy
from steadypay.notifications.options import NotificationOptions
from steadypay.notifications.worker import DeliveryWorker
from steadypay.outbox import relay as relay_module
from steadypay.outbox.options import RelayOptions
from steadypay.outbox.relay import OutboxRelay
from steadypay.resilience.retry import (
    exponential_s,
    full_jitter,
    poll_backoff_s,
    retry_delay_s,
)


def test_exponential_doubles_from_the_base_up_to_the_cap() -> None:
    assert [exponential_s(n, 0.5, 30.0) for n in range(9)] == [
        0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0
    ]  # fmt: skip
    assert exponential_s(0, 0.0, 30.0) == 0.0


def test_exponential_past_the_largest_float_is_the_cap() -> None:
    assert exponential_s(5000, 1.0, 600.0) == 600.0
    assert exponential_s(5000, 0.0, 600.0) == 0.0


def test_full_jitter_scales_the_exponential_by_the_injected_rng() -> None:
    assert full_jitter(3, 0.1, 1.0, lambda: 0.5) == pytest.approx(0.4)
    assert full_jitter(10, 0.1, 1.0, lambda: 0.25) == pytest.approx(0.25)
    assert full_jitter(3, 0.1, 1.0, lambda: 0.0) == 0.0
    assert full_jitter(2000, 1.0, 600.0, lambda: 0.5) == 300.0  # no OverflowError


def test_retry_delay_counts_attempts_from_one() -> None:
    draws = iter([0.5, 0.5, 0.5, 0.5])
    rng = lambda: next(draws)  # noqa: E731
    assert [retry_delay_s(n, 10.0, 30.0, rng) for n in (0, 1, 2, 3)] == [5.0, 5.0, 10.0, 15.0]


def test_the_ledgers_retry_policy_is_full_jitter() -> None:
    policy = RetryPolicy(base_s=0.005, cap_s=0.25)
    for attempt in range(12):  # the same as its hand-written formula before
        assert policy.backoff(attempt, lambda: 0.7) == 0.7 * min(0.25, 0.005 * 2.0**attempt)
    assert policy.backoff(2, lambda: 0.5) == pytest.approx(0.01)
    assert policy.backoff(9, lambda: 1.0) == 0.25


def test_poll_backoff_doubles_the_interval_at_most_six_times_and_30_s() -> None:
    assert [poll_backoff_s(n, 1.0) for n in range(1, 8)] == [2, 4, 8, 16, 30, 30, 30]
    assert [poll_backoff_s(n, 0.5) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert poll_backoff_s(20, 0.1) == pytest.approx(6.4)  # 0.1 * 2^6: the doublings bound it
    assert poll_backoff_s(10_000, 1.0) == 30.0
    for failures in range(1, 12):  # the relay's and the worker's formula before
        for interval in (0.01, 0.5, 1.0, 7.0):
            assert poll_backoff_s(failures, interval) == min(
                30.0, interval * 2.0 ** min(failures, 6)
            )


# --- the loops ---------------------------------------------------------------------------------


def test_the_supervisor_restarts_a_crashing_child_after_a_doubling_capped_delay() -> None:
    said: list[str] = []
    supervisor = Supervisor([ChildSpec("svc", ["true"])], say=said.append, backoff_cap_s=5.0)
    [child] = supervisor.children
    delays = []
    for _ in range(6):
        child.process = SimpleNamespace(poll=lambda: 1)  # type: ignore[assignment]
        supervisor._watch(100.0)
        delays.append(child.next_start_at - 100.0)
    assert delays == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert said[-1].endswith("restarting in 5.0 s")


def test_the_embedded_postgres_watchdog_retries_after_1_s_doubling_to_30_s() -> None:
    class Cluster:
        port = 5432

        def is_running(self) -> bool:
            return False

        def start(self, timeout: float) -> None:
            raise EmbeddedPostgresError("no")

    now = [0.0]
    watchdog = PostgresWatchdog(Cluster(), clock=lambda: now[0])  # type: ignore[arg-type]
    waits = []
    for _ in range(8):
        said = watchdog()
        assert said is not None
        waits.append(said.split("next try in ")[1].split(" s")[0])
        now[0] = watchdog._next_try
    assert waits == ["1", "2", "4", "8", "16", "30", "30", "30"]


class _FailingRounds:
    """Fails ``rounds`` times with the database down, then sets ``stop``; records the sleeps."""

    def __init__(self, rounds: int, stop: asyncio.Event) -> None:
        self.left = rounds
        self.stop = stop
        self.sleeps: list[float] = []

    async def run_once(self) -> Any:
        if self.left == 0:
            self.stop.set()
            raise RuntimeError("a bug")  # the other failure path: backs off the same way
        self.left -= 1
        raise DatabaseUnavailable()

    async def sleep(self, _stop: asyncio.Event, seconds: float) -> None:
        self.sleeps.append(seconds)


async def test_the_outbox_relay_backs_off_after_consecutive_failed_rounds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stop = asyncio.Event()
    rounds = _FailingRounds(7, stop)
    client = SimpleNamespace(
        pipeline=SimpleNamespace(config=SimpleNamespace(total_timeout_s=1.0)),
        dependency="notifications",
    )
    relay = OutboxRelay(None, client, RelayOptions(idle_sleep_s=0.5))  # type: ignore[arg-type]
    monkeypatch.setattr(relay, "run_once", rounds.run_once)
    monkeypatch.setattr(relay_module, "_sleep_unless", rounds.sleep)
    await relay.run_forever(stop)
    assert rounds.sleeps == [1, 2, 4, 8, 16, 30, 30, 30]


async def test_the_webhook_worker_backs_off_after_consecutive_failed_rounds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stop = asyncio.Event()
    rounds = _FailingRounds(7, stop)
    worker = DeliveryWorker(None, None, NotificationOptions(poll_interval_s=0.1))  # type: ignore[arg-type]
    monkeypatch.setattr(worker, "run_once", rounds.run_once)
    monkeypatch.setattr(worker, "_sleep", rounds.sleep)
    await worker.run_forever(stop)
    assert rounds.sleeps == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 6.4, 6.4])
