"""`steadypay chaos suite --quick`, as a user runs it: every experiment against a steadypay of
its own, the bank workload throughout. Money must be exact after every one of them. The
cluster experiments (primary killed, node lost, replica killed, primary partitioned, replica
lagging) run once, in the suite's three-member environment."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.processes import STEADYPAY, clean_env

pytestmark = pytest.mark.e2e


CLUSTER_EXPERIMENTS = (
    "primary-killed", "primary-node-lost", "replica-killed", "primary-partitioned",
    "replica-lagging",
)  # fmt: skip


@pytest.mark.timeout(1000)
def test_the_quick_chaos_suite_finds_no_violation(tmp_path: Path) -> None:
    report = tmp_path / "chaos.json"
    result = subprocess.run(
        [STEADYPAY, "chaos", "suite", "--quick", "--json", str(report),
         "--data-dir", str(tmp_path / "env")],
        capture_output=True, text=True, env=clean_env(), timeout=960, check=False,
    )  # fmt: skip
    assert report.exists(), result.stdout[-3000:] + result.stderr[-3000:]
    outcome = json.loads(report.read_text())
    by_name = {e["name"]: e for e in outcome["experiments"]}
    failures = {n: (e["status"], e["note"], e["violation_messages"]) for n, e in by_name.items()
                if not e["ok"]}  # fmt: skip
    assert not failures, failures
    assert result.returncode == 0, result.stdout[-3000:]
    assert "CHAOS OK" in result.stdout
    for name, experiment in by_name.items():
        if experiment["status"] == "skipped":
            assert name == "redis-down"
            assert shutil.which("redis-server") is None
            continue
        assert experiment["status"] == "completed", name
        assert experiment["violations"] == 0, name
        assert experiment["acknowledged"] > 100, (name, experiment)
        assert experiment["recovery_s"] is not None, name
    # each experiment's workload seed is reported (consecutive from the run's drawn base seed)
    seeds = [e["seed"] for e in outcome["experiments"]]
    assert all(isinstance(seed, int) for seed in seeds), seeds
    assert seeds == list(range(seeds[0], seeds[0] + len(seeds)))
    # the faults really bit: the database was gone, in-process faults failed requests
    assert by_name["postgres-killed"]["availability_during_fault"] < 0.5
    assert by_name["inprocess-5pct"]["availability_during_fault"] < 1.0
    assert set(CLUSTER_EXPERIMENTS) <= set(by_name)
    _assert_the_cluster_faults_bit(by_name)


def _assert_the_cluster_faults_bit(by_name: dict[str, Any]) -> None:
    """Patroni promoted another member, writes went on without a lost replica, the
    partition cut the writes off, and reads routed around the lagging replica while every
    read with its write's token saw the write."""
    for name in ("primary-killed", "primary-node-lost"):
        details = by_name[name]["details"]
        assert details["new_primary"] != details["killed"], (name, details)
    assert by_name["primary-killed"]["availability_during_fault"] < 1.0
    assert by_name["replica-killed"]["availability_during_fault"] > 0.9
    assert by_name["primary-partitioned"]["availability_during_fault"] < 0.9
    lagging = by_name["replica-lagging"]["details"]
    ryw = lagging["read_your_writes"]
    assert ryw["token_reads"] > 10, lagging
    assert ryw["token_reads_missed"] == 0, lagging
    settled = lagging["router_decisions_settled"]
    assert not [k for k in settled if k.split()[0] == lagging["lagging"]], lagging
    served = [k for k in settled if k.split()[0] not in (lagging["lagging"], "primary")]
    assert served, lagging  # without the token, a caught-up replica served reads
