"""The failover drill's figures and the suite's cluster plumbing, from made-up histories: RTO
counts only what was sent after the kill, 503 seconds are a union of intervals, RPO names the
transfers acknowledged before a kill that the ledger does not hold."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from steadypay.chaos.bank import BankRun, Op, Setup
from steadypay.chaos.checker import Verdict, Violation
from steadypay.chaos.cluster import member_of
from steadypay.chaos.drill import DrillOptions, Kill, _covered, _report
from steadypay.chaos.suite import load, names, needs_cluster, resolve
from steadypay.money import get_currency

HERE = Path(".")
CLUSTER = {"primary-killed", "primary-node-lost", "replica-killed", "primary-partitioned",
           "replica-lagging"}  # fmt: skip


def op(n: int, tries: list[tuple[float, float, str]], outcome: str = "ok") -> Op:
    return Op(n, 0, "transfer", f"k{n}", "a", "b", 100, started=0.0, tries=tries,
              outcome=outcome)  # type: ignore[arg-type]  # fmt: skip


def verdict(*violations: Violation) -> Verdict:
    return Verdict({}, list(violations), [], {}, {})


def run(*ops: Op) -> BankRun:
    return BankRun(Setup(get_currency("USD"), ["a", "b"], 0, "r"), list(ops), 0.0, 60.0, 0.0)


def test_the_union_of_intervals_counts_overlaps_once() -> None:
    assert _covered([]) == 0
    assert _covered([(1.0, 2.0), (1.5, 3.0), (5.0, 6.0), (5.2, 5.4)]) == pytest.approx(3.0)
    assert _covered([(2.0, 1.0)]) == 0  # clipped away entirely


def test_per_kill_figures_come_from_the_tries_around_each_kill() -> None:
    ops = [
        op(1, [(9.0, 9.5, "201")]),  # acknowledged before the first kill
        op(2, [(9.9, 10.3, "201")]),  # sent before the kill: proves nothing about recovery
        op(3, [(10.1, 10.2, "503"), (10.5, 11.0, "503"), (12.0, 12.1, "201")]),
        op(4, [(10.8, 11.5, "503"), (11.6, 11.7, "ReadTimeout"), (12.5, 12.6, "201")]),
        op(5, [(19.0, 19.1, "201")]),  # acknowledged before the second kill, then lost
        op(6, [(20.2, 20.4, "500"), (21.0, 21.5, "201")]),
    ]
    kills = [Kill(1, "pg1", 1, at=10.0, rto_s=2.0), Kill(2, "pg2", 2, at=20.0, rto_s=1.0)]
    present = {"k1", "k2", "k3", "k4", "k6"}
    report = _report(DrillOptions(kills=2), HERE, run(*ops), verdict(), present, kills, [])
    first, second = report.kills
    assert first.seconds_503 == pytest.approx(0.1 + 1.0)  # [10.1,10.2] and [10.5,11.5]
    assert first.answers == {"503": 3, "201": 1, "ReadTimeout": 1}  # until 12.0
    assert first.lost == 0
    assert second.lost == 1  # k5 was acknowledged before the second kill
    assert second.answers == {"500": 1}
    assert report.lost == 1
    assert report.answers_500 == 1
    assert not report.safe


def test_quantiles_and_goals() -> None:
    kills = [Kill(i, "pg1", None, at=0.0, rto_s=float(i)) for i in range(1, 11)]
    report = _report(DrillOptions(kills=10), HERE, run(), verdict(), set(), kills, [])
    assert report.rto(0.5) == 5.0
    assert report.rto(0.99) == 10.0  # nearest rank: the worst of ten
    assert report.safe
    assert not report.within_goal  # the postmaster goal is 5 s
    assert report.json()["rto_s"] == {"p50": 5.0, "p99": 10.0}
    stuck = _report(DrillOptions(kills=1), HERE, run(), verdict(), set(),
                    [Kill(1, "pg1", None, at=0.0)], [])  # fmt: skip
    assert math.isinf(stuck.rto(0.99) or 0)
    assert not stuck.within_goal
    assert stuck.json()["rto_s"]["p99"] is None


def test_duplicates_and_audit_come_from_the_checker() -> None:
    found = verdict(Violation("one_effect_per_key", "key k1 has 2 transfers"),
                    Violation("ledger_audit", "ledger check x: 1 violation(s)"))  # fmt: skip
    report = _report(DrillOptions(), HERE, run(), found, set(), [], [])
    assert report.duplicates == 1
    assert not report.audit_clean
    assert not report.safe


def test_the_cluster_experiments_need_the_three_node_environment() -> None:
    assert {n for n in names() if needs_cluster(n)} == CLUSTER
    quick = resolve(load("primary-node-lost"), quick=True)["configuration"]
    # Patroni's ttl is not shortened by --quick: the workload covers the wait for it
    assert quick["bank_s"] == quick["warmup_s"] + quick["fault_s"] + quick["recover_s"] + 25


def test_router_targets_are_named_by_member() -> None:
    ports, proxies = {"pg1": 5001, "pg2": 5002}, {"pg1": 6001, "pg2": 6002}
    assert member_of("127.0.0.1:6002", ports, proxies) == "pg2"
    assert member_of("127.0.0.1:5001", ports, proxies) == "pg1"
    assert member_of("10.0.0.1:7000", ports, proxies) == "10.0.0.1:7000"
