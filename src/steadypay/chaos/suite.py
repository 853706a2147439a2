"""`steadypay chaos run NAME` / `steadypay chaos suite [--quick]`: Chaos Toolkit experiments
against a steadypay started for the purpose, each under the bank workload.

The experiments are Chaos Toolkit JSON files (``experiments/*.json``): a steady-state hypothesis
(``/health/ready`` is 200 and the bank checker found no violation), a method (start the
workload, inject the fault, wait, restore, check the workload) and rollbacks (restore
everything). They run with ``chaostoolkit-lib`` and the rollback strategy ``always``: by
default Chaos Toolkit skips rollbacks when an experiment *fails*, which would leave a fault in
place for the next one.

Durations come from each experiment's ``configuration`` (``warmup_s``, ``fault_s``,
``recover_s``); ``--quick`` shortens them. The workload runs for warmup + fault + recover, plus
``failover_s`` for an experiment that first waits for Patroni to promote a standby (not
shortened: Patroni's timings are what they are).

Experiments that need the database cluster (``"needs": ["cluster"]`` in their ``steadypay``
extension) run in an environment of their own with three members (``db_nodes=3``), started
once for all of them after the single-node experiments are done.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from steadypay.chaos import provider
from steadypay.chaos.bank import BankOptions, BankRun
from steadypay.chaos.environment import ChaosEnvironment, EnvironmentOptions, FaultMark

QUICK = {"warmup_s": 2, "fault_s": 4, "recover_s": 4}
ROLLBACKS_ALWAYS = {"runtime": {"rollbacks": {"strategy": "always"}}}
_VARIABLE = re.compile(r"^\$\{(\w+)\}$")


def names() -> list[str]:
    folder = resources.files("steadypay.chaos") / "experiments"
    return sorted(
        p.name.removesuffix(".json") for p in folder.iterdir() if p.name.endswith(".json")
    )


def load(name: str) -> dict[str, Any]:
    if name not in names():
        raise KeyError(f"no experiment {name!r}; there are: {', '.join(names())}")
    text = (resources.files("steadypay.chaos") / "experiments" / f"{name}.json").read_text()
    experiment: dict[str, Any] = json.loads(text)
    return experiment


def resolve(experiment: dict[str, Any], quick: bool) -> dict[str, Any]:
    """Substitute ``${name}`` with the (quick) configuration's numbers, everywhere."""
    config = {**experiment.get("configuration", {}), **(QUICK if quick else {})}
    config["bank_s"] = (
        config["warmup_s"] + config["fault_s"] + config["recover_s"] + config.get("failover_s", 0)
    )

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, str) and (m := _VARIABLE.match(value)):
            return config[m.group(1)]
        return value

    resolved: dict[str, Any] = walk(experiment)
    resolved["configuration"] = config
    return resolved


@dataclass(slots=True)
class Outcome:
    name: str
    title: str
    status: str
    """completed, deviated, failed, skipped"""
    attempted: int = 0
    acknowledged: int = 0
    failed: int = 0
    unknown: int = 0
    availability_during_fault: float | None = None
    recovery_s: float | None = None
    violations: int = 0
    violation_messages: list[str] | None = None
    duration_s: float = 0.0
    note: str = ""
    seed: int | None = None
    """The bank workload's seed (its operations; timing and interleavings are not replayed)."""
    details: dict[str, Any] | None = None
    """What the experiment observed besides the workload (new primary, router decisions)."""

    @property
    def ok(self) -> bool:
        return self.status in ("completed", "skipped") and self.violations == 0


def measure(run: BankRun, faults: list[FaultMark]) -> tuple[float | None, float | None]:
    """(availability during the fault window, seconds to recover after it), from the requests
    the clients sent (each retry is a request of its own).

    Availability: the share of requests in flight while a fault was on that got a definite answer
    (2xx, or a final 4xx such as insufficient funds), deliberate key reuses left out.
    Recovery: from the fault's end until the first acknowledged (2xx) request answered after
    it; about 0 when requests were being acknowledged right through the end of the fault."""
    if not faults or faults[0].ended is None:
        return None, None
    start = min(f.started for f in faults)
    end = max(f.ended or f.started for f in faults)
    tries = [t for op in run.ops if op.kind != "reuse" for t in op.tries]
    during = [t for t in tries if t[0] <= end and t[1] >= start]  # overlapping the window
    definite = [
        t for t in during if t[2].isdigit() and int(t[2]) < 500 and t[2] not in ("409", "429")
    ]
    availability = round(len(definite) / len(during), 4) if during else None
    acknowledged = [t[1] for t in tries if t[2].startswith("2") and t[1] >= end]
    recovery = round(max(0.0, min(acknowledged) - end), 3) if acknowledged else None
    return availability, recovery


def _definite(answer: str) -> bool:
    """A final answer: 2xx, or a 4xx other than 409 (key in use) and 429 (slow down)."""
    return answer.isdigit() and int(answer) < 500 and answer not in ("409", "429")


def run_one(env: ChaosEnvironment, name: str, quick: bool) -> Outcome:
    from chaoslib.experiment import run_experiment

    experiment = resolve(load(name), quick)
    title = str(experiment.get("title", name))
    needs = {n for ext in experiment.get("extensions", []) for n in ext.get("needs", [])}
    if "redis" in needs and "redis" not in env.proxies:
        return Outcome(name, title, "skipped", note="needs redis-server, which is not installed")
    if ("cluster" in needs) != (env.db_cluster is not None):
        wanted = "three database nodes" if "cluster" in needs else "one database node"
        return Outcome(name, title, "skipped", note=f"needs an environment with {wanted}")
    provider.reset()
    started = time.monotonic()
    journal = run_experiment(experiment, settings=ROLLBACKS_ALWAYS)
    outcome = Outcome(name, title, str(journal.get("status")), duration_s=0.0)
    outcome.duration_s = round(time.monotonic() - started, 1)
    bank = provider.runtime().bank
    if bank is not None and bank.run is not None and bank.verdict is not None:
        counts = bank.verdict.counts
        outcome.attempted = counts["attempted"]
        outcome.acknowledged = counts["acknowledged"]
        outcome.failed = counts["failed"]
        outcome.unknown = counts["unknown"]
        outcome.violations = len(bank.verdict.violations)
        outcome.violation_messages = [
            f"{v.check}: {v.message}" for v in bank.verdict.violations[:20]
        ]
        outcome.availability_during_fault, outcome.recovery_s = measure(bank.run, env.marks.faults)
    elif outcome.status == "completed":
        outcome.status = "failed"
        outcome.note = "the bank workload did not run to its end"
    rt = provider.runtime()
    if rt.violations:
        outcome.violations += len(rt.violations)
        outcome.violation_messages = [*(outcome.violation_messages or []), *rt.violations[:20]]
    outcome.details = dict(rt.details) or None
    if journal.get("deviated"):
        outcome.status = "deviated"
    failures = [
        f"{r['activity']['name']}: {r.get('exception', [''])[-1].strip()}"
        for r in journal.get("run", []) + journal.get("rollbacks", [])
        if r.get("status") == "failed"
    ]
    if failures:
        outcome.note = "; ".join(failures)[:500]
    return outcome


def run_suite(
    selected: list[str],
    *,
    quick: bool,
    data_dir: Path | None,
    bank_options: BankOptions,
    api_workers: int = 2,
) -> list[Outcome]:
    """Run ``selected``: the single-node experiments in one environment, then those that
    need the cluster in one three-node environment (``<dir>/three-nodes``); outcomes in the
    order selected, experiment ``i`` with the workload seed ``seed + i``."""
    owned = data_dir is None
    directory = Path(tempfile.mkdtemp(prefix="steadypay-chaos-")) if owned else data_dir
    assert directory is not None
    clustered = {name for name in selected if needs_cluster(name)}
    groups = [
        (
            [n for n in selected if n not in clustered],
            EnvironmentOptions(directory, api_workers=api_workers),
        ),
        (
            [n for n in selected if n in clustered],
            EnvironmentOptions(directory / "three-nodes", api_workers=api_workers, db_nodes=3),
        ),
    ]
    done: dict[str, Outcome] = {}
    try:
        for group, options in groups:
            if not group:
                continue
            with ChaosEnvironment(options) as env:
                for name in group:
                    index = selected.index(name)
                    seed = None if bank_options.seed is None else bank_options.seed + index
                    provider.install(env, replace(bank_options, seed=seed))
                    outcome = run_one(env, name, quick)
                    outcome.seed = seed
                    done[name] = outcome
    finally:
        # keep the logs of a run that went wrong (or one the caller placed)
        if owned and done and all(o.ok for o in done.values()) and len(done) == len(selected):
            shutil.rmtree(directory, ignore_errors=True)
    return [done[name] for name in selected]


def needs_cluster(name: str) -> bool:
    """Whether an experiment needs the three-member database cluster."""
    experiment = load(name)
    return any("cluster" in ext.get("needs", []) for ext in experiment.get("extensions", []))


def outcomes_json(outcomes: list[Outcome]) -> dict[str, Any]:
    return {
        "ok": all(o.ok for o in outcomes),
        "experiments": [asdict(o) | {"ok": o.ok} for o in outcomes],
    }
