"""The monitor's decision state machine and round evaluation (pure, no I/O)."""

from __future__ import annotations

import asyncio

import pytest

from steadypay.monitor.canary import canary_key
from steadypay.monitor.checks import NamedCheck, run_checks
from steadypay.monitor.domain import (
    ComponentResult,
    Decision,
    DecisionMachine,
    Status,
    failure_reason,
    round_healthy,
)

F, S = False, True


def run(machine: DecisionMachine, rounds: list[bool]) -> list[bool]:
    """Whether a failover was wanted after each round."""
    return [machine.observe(healthy).wants_failover for healthy in rounds]


@pytest.mark.parametrize("threshold", [1, 2, 3, 5])
def test_wants_failover_exactly_at_the_nth_consecutive_failure(threshold: int) -> None:
    machine = DecisionMachine(threshold=threshold, recovery=2)
    wanted = run(machine, [F] * threshold)
    assert wanted == [False] * (threshold - 1) + [True]


def test_one_success_does_not_reset_a_flapping_system() -> None:
    machine = DecisionMachine(threshold=3, recovery=2)
    assert run(machine, [F, S, F, S, F]) == [False, False, False, False, True]


def test_m_successes_in_a_row_reset_the_count() -> None:
    machine = DecisionMachine(threshold=3, recovery=2)
    run(machine, [F, F, S])
    assert machine.failures == 2
    verdict = machine.observe(S)
    assert verdict.decision is Decision.RECOVERED
    assert (machine.failures, machine.successes) == (0, 0)
    assert run(machine, [F, F]) == [False, False]  # two fresh failures: below N again


def test_a_failure_restarts_the_success_count() -> None:
    machine = DecisionMachine(threshold=5, recovery=3)
    run(machine, [F, S, S, F, S, S])
    assert machine.failures == 2  # never 3 successes in a row
    assert machine.observe(S).decision is Decision.RECOVERED


def test_decisions_name_the_state() -> None:
    machine = DecisionMachine(threshold=2, recovery=2)
    decisions = [machine.observe(h).decision for h in [S, F, S, S, F, F]]
    assert decisions == [
        Decision.HEALTHY,
        Decision.FAILING,
        Decision.RECOVERING,
        Decision.RECOVERED,
        Decision.FAILING,
        Decision.FAILING,
    ]


def test_a_failover_consumes_the_failures() -> None:
    machine = DecisionMachine(threshold=2, recovery=1)
    assert run(machine, [F, F]) == [False, True]
    machine.failover_done()
    assert run(machine, [F, F]) == [False, True]


@pytest.mark.parametrize(("threshold", "recovery"), [(0, 1), (1, 0)])
def test_thresholds_must_be_positive(threshold: int, recovery: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        DecisionMachine(threshold=threshold, recovery=recovery)


def test_warn_does_not_fail_a_round_but_fail_does() -> None:
    ok = ComponentResult("api", Status.PASS, 0.01)
    warn = ComponentResult("dependencies", Status.WARN, 0.01, "degraded: fraud down")
    fail = ComponentResult("database", Status.FAIL, 0.01, "timed out")
    assert round_healthy([ok, warn])
    assert not round_healthy([ok, warn, fail])
    assert failure_reason([ok, warn, fail]) == (
        "dependencies warn: degraded: fraud down; database fail: timed out"
    )
    assert failure_reason([ok]) == "all checks passed"


async def test_an_exception_or_a_timeout_in_a_check_is_a_failed_component() -> None:
    async def passes() -> ComponentResult:
        return ComponentResult("api", Status.PASS, 0.0)

    async def buggy() -> ComponentResult:
        raise KeyError("a bug in a check")

    async def hangs() -> ComponentResult:
        await asyncio.sleep(10)
        raise AssertionError("unreachable")

    results = await run_checks(
        [
            NamedCheck("api", passes, 1.0),
            NamedCheck("payments", buggy, 1.0),
            NamedCheck("database", hangs, 0.02),
        ]
    )
    assert [(r.component, r.status) for r in results] == [
        ("api", Status.PASS),
        ("payments", Status.FAIL),
        ("database", Status.FAIL),
    ]
    assert results[1].detail is not None
    assert "KeyError" in results[1].detail
    assert results[2].detail == "timed out after 0.02 s"
    assert not round_healthy(results)


def test_canary_keys_are_derived_per_label_and_admin_key() -> None:
    a = canary_key("admin-key-1", "a")
    assert a.startswith("sp_")
    assert len(a) > 40
    assert a == canary_key("admin-key-1", "a")
    assert a != canary_key("admin-key-1", "b")
    assert a != canary_key("admin-key-2", "a")
