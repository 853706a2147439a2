"""`steadypay bench payments --quick` as a user runs it: every phase produces figures and every
ledger audit is clean. Figures are printed, never asserted against a speed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.e2e.processes import STEADYPAY, clean_env

pytestmark = pytest.mark.e2e

HTTP_PHASES = ("single", "hot_account", "half_peak", "batch", "fraud_down")


@pytest.mark.timeout(180)
def test_quick_bench_runs_every_phase_and_leaves_the_ledger_clean(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [STEADYPAY, "bench", "payments", "--quick", "--duration", "2", "--json", str(out),
         "--data-dir", str(tmp_path / "data")],
        env=clean_env(), capture_output=True, text=True, timeout=170, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    assert "steadypay bench payments" in done.stdout  # the human table
    figures = json.loads(out.read_text())
    phases = {p["name"]: p for p in figures["phases"]}
    assert list(phases) == ["pgbench", *HTTP_PHASES]

    pgbench = phases["pgbench"]
    assert pgbench["transfers_per_s"] > 0
    assert pgbench["statuses"]["failed"] == 0
    assert pgbench["cpu_s"]["postgresql"] > 0
    assert pgbench["cpu_s"]["loadgen"] > 0

    for name in HTTP_PHASES:
        phase = phases[name]
        if name == "batch" and not phase["available"]:
            assert "404" in phase["note"]  # only an API without the endpoint may skip it
            continue
        assert phase["available"], name
        assert phase["transfers_per_s"] > 0, name
        assert phase["ratio_to_pgbench"] > 0, name
        successes = sum(n for status, n in phase["statuses"].items() if status.startswith("2"))
        assert successes > 0, (name, phase["statuses"])
        if name == "batch":  # items are tallied from the answers, not assumed
            assert phase["statuses"].get("item:completed", 0) > 0, phase["statuses"]
        latency = phase["latency_ms"]
        assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"], name
        cpu = phase["cpu_s"]
        for group in ("steadypay", "postgresql", "loadgen"):
            assert cpu[group] > 0, (name, group)
        assert phase["loadgen_busiest_process_pct"] > 0, name
        rss = phase["peak_rss_mb_per_api_worker"]
        assert len(rss) == figures["options"]["api_workers"], name
        assert all(mb > 0 for mb in rss.values()), name
        assert phase["audit"]["ok"], (name, phase["audit"])
        assert phase["audit"]["transfers"] > 0, name
    assert phases["half_peak"]["target_rate_per_s"] > 0
    assert figures["audits_clean"] is True
    assert {t["target"] for t in figures["targets"]} >= {"p99 at half of peak (ms)"}
