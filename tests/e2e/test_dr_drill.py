"""`steadypay drill dr`, as a user runs it: region A (steadypay with backups to moto's
us-east-1 and WAL straight to us-west-2) is destroyed under the bank workload, the runbook
fails over to us-west-2 from that bucket alone, and region B holds every acknowledged transfer
exactly once except those of the last seconds, which the drill lists (the RPO). RTO and RPO are
asserted against the goals only through the drill's exit status (3 when only a goal is
missed, which a loaded CI machine may do): what must hold always is asserted here."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.e2e.processes import STEADYPAY, clean_env

pytestmark = pytest.mark.e2e

EXIT_GOAL_MISSED = 3


@pytest.mark.timeout(400)
def test_losing_a_region_loses_only_the_last_seconds(tmp_path: Path) -> None:
    report = tmp_path / "dr.json"
    done = subprocess.run(
        [STEADYPAY, "drill", "dr", "--workload-s", "8", "--json", str(report),
         "--data-dir", str(tmp_path / "regions")],
        capture_output=True, text=True, env=clean_env(), timeout=380, check=False,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    said = done.stdout[-4000:] + done.stderr[-4000:]
    assert report.exists(), said
    figures = json.loads(report.read_text())
    print(f"\nRTO {figures['rto_s']} s, RPO {figures['rpo_s']} s, "
          f"{len(figures['missing'])} of {figures['acknowledged']} missing")  # fmt: skip
    assert done.returncode in (0, EXIT_GOAL_MISSED), said
    assert figures["safe"] is True, figures["problems"]
    assert figures["duplicates"] == 0
    assert figures["audit_clean"] is True
    assert figures["acknowledged"] > 50
    assert figures["present"] + len(figures["missing"]) == figures["acknowledged"]
    assert [s["name"] for s in figures["runbook_steps"]] == [
        "fence", "restore", "start", "verify", "dns", "notify", "report",
    ]  # fmt: skip
    assert figures["dns_weights"] == {"us-east-1": 0, "us-west-2": 100}
    # the loss is bounded by what WAL shipping had not yet shipped (archive_timeout 3 s, plus
    # the upload), far from the whole workload: a broken archive would lose everything
    assert figures["rpo_s"] < 30, figures["missing"][:5]
    assert len(figures["missing"]) < figures["acknowledged"] / 2
