"""The Chaos Toolkit experiments: valid, complete, and measured the way the report says."""

from __future__ import annotations

import inspect

import pytest
from chaoslib.experiment import ensure_experiment_is_valid

from steadypay.chaos import provider
from steadypay.chaos.bank import BankRun, Op, Setup
from steadypay.chaos.environment import FaultMark
from steadypay.chaos.suite import QUICK, load, measure, names, resolve
from steadypay.money import get_currency

REQUIRED = {
    "fraud-killed", "fraud-slow", "notifications-killed", "relay-killed", "api-worker-killed",
    "postgres-killed", "postgres-slow-reset", "redis-down", "inprocess-5pct",
}  # fmt: skip


def activities(experiment: dict[str, object]) -> list[dict[str, object]]:
    hypothesis = experiment["steady-state-hypothesis"]
    assert isinstance(hypothesis, dict)
    found = [*hypothesis["probes"], *experiment["method"], *experiment["rollbacks"]]  # type: ignore[misc]
    return found


def test_the_issue_s_experiments_all_exist() -> None:
    assert set(names()) >= REQUIRED


@pytest.mark.parametrize("name", names())
def test_each_experiment_is_valid_chaos_toolkit_and_always_restores(name: str) -> None:
    for quick in (False, True):
        experiment = resolve(load(name), quick)
        ensure_experiment_is_valid(experiment)
        assert "${" not in str(experiment), "every variable is resolved"
    experiment = resolve(load(name), quick=True)
    for key, value in QUICK.items():
        assert experiment["configuration"][key] == value
    probes = {p["name"]: p for p in experiment["steady-state-hypothesis"]["probes"]}
    assert probes["api-ready"]["tolerance"] == 200
    assert probes["no-money-violations"]["tolerance"] == 0
    method = [a["provider"]["func"] for a in experiment["method"]]
    assert method[0] == "start_bank"
    assert method[-2:] == ["restore", "finish_bank"]
    assert [a["provider"]["func"] for a in experiment["rollbacks"]] == ["restore"]
    for activity in activities(experiment):
        spec = activity["provider"]
        assert isinstance(spec, dict)
        assert spec["module"] == "steadypay.chaos.provider"
        function = getattr(provider, str(spec["func"]))
        inspect.signature(function).bind(**spec.get("arguments", {}))


def op(n: int, tries: list[tuple[float, float, str]], kind: str = "transfer") -> Op:
    return Op(n, 0, kind, f"k{n}", "a", "b", 100, started=0.0, tries=tries)  # type: ignore[arg-type]


def test_availability_counts_requests_in_flight_during_the_fault_and_recovery_its_end() -> None:
    fault = FaultMark("kill", started=10.0, ended=20.0)
    ops = [
        op(1, [(5.0, 6.0, "201")]),  # before the fault: not counted
        op(2, [(9.5, 10.5, "ReadError"), (11.0, 11.2, "503"), (12.0, 12.1, "201")]),
        op(3, [(15.0, 15.5, "422")]),  # a final answer counts as available
        op(4, [(18.0, 21.0, "ReadTimeout"), (21.5, 22.5, "201")]),
        op(5, [(12.0, 12.1, "422")], kind="reuse"),  # refused by design: left out
    ]
    run = BankRun(Setup(get_currency("USD"), ["a", "b"], 0, "r"), ops, 0.0, 30.0, 0.0)
    availability, recovery = measure(run, [fault])
    assert availability == pytest.approx(2 / 5)
    assert recovery == pytest.approx(2.5)
    assert measure(run, []) == (None, None)
