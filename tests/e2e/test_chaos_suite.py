"""`steadypay chaos suite --quick`, as a user runs it: every experiment against a steadypay of
its own, the bank workload throughout. Money must be exact after every one of them."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.processes import STEADYPAY, clean_env

pytestmark = pytest.mark.e2e


def test_the_quick_chaos_suite_finds_no_violation(tmp_path: Path) -> None:
    report = tmp_path / "chaos.json"
    result = subprocess.run(
        [STEADYPAY, "chaos", "suite", "--quick", "--json", str(report),
         "--data-dir", str(tmp_path / "env")],
        capture_output=True, text=True, env=clean_env(), timeout=600, check=False,
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
