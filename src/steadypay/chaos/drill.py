"""`steadypay drill failover`: kill the primary again and again under the bank workload, and
measure what a client sees.

A three-member steadypay (:class:`~steadypay.chaos.environment.ChaosEnvironment` with
``db_nodes=3``, no fault proxies: the services reach the members directly) runs the bank
workload from start to end. The drill then kills the primary ``kills`` times — its postmaster
(``postmaster``: Patroni promotes a standby in seconds), or its Patroni and postmaster
(``node``: the leader key must expire first; the drill starts the node again once another
member is the primary, and it rejoins as a replica). Before each kill it waits until the
cluster is whole again: one primary, two streaming, synchronous replicas, and a few seconds of
steady load.

For each kill — the moment its postmaster was SIGKILLed (``node``: once Patroni, killed
first, and then the postmaster are gone; until then the old primary still commits) — from the
workload's own record (:attr:`~steadypay.chaos.bank.Op.tries`, in ``time.monotonic()``):

- **RTO**: from the kill to the first acknowledged (2xx) transfer *sent* after it (a request
  sent before the kill may have committed before it; it proves nothing about recovery);
- **503 seconds**: how much of the time after the kill was covered by requests answered 503
  (the union of their send-to-answer intervals, up to the next kill);
- the answers between the kill and recovery, by status (or transport error);
- **promoted**: when Patroni named a new primary; **rejoined**: when the old primary was a
  streaming replica on the new timeline again;
- **RPO**: transfers acknowledged before the kill that the ledger does not hold afterwards.

After the last kill the workload stops and the bank checker
(:func:`~steadypay.chaos.checker.check`) runs: every acknowledged transfer exactly once,
duplicates, unknown outcomes resolved, balances, the ledger audit. A drill is *safe* when
nothing was lost or duplicated, the checker found nothing and no request was answered 500;
it is *within goal* when every RTO is at most 5 s (``postmaster``) or 30 s (``node``).
"""

from __future__ import annotations

import asyncio
import math
import secrets
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import asyncpg

from steadypay.chaos.bank import BankClient, BankOptions, BankRun, Op, run_workload
from steadypay.chaos.checker import Verdict, check
from steadypay.chaos.cluster import roles
from steadypay.chaos.environment import ChaosEnvironment, EnvironmentOptions
from steadypay.ha import ClusterError

Mode = Literal["postmaster", "node"]
RTO_GOAL_S: dict[str, float] = {"postmaster": 5.0, "node": 30.0}
AUDIT_CHECKS = ("conservation", "no_negative_balance", "model_balances", "ledger_audit")


@dataclass(frozen=True, slots=True)
class DrillOptions:
    kills: int = 3
    mode: Mode = "postmaster"
    data_dir: Path | None = None
    """where the environment lives (kept); None: a temporary directory, removed if all went
    well"""
    api_workers: int = 2
    wallets: int = 8
    clients: int = 6
    settle_s: float = 3.0
    """steady load before each kill, once the cluster is whole"""
    seed: int | None = None


@dataclass(slots=True)
class Kill:
    number: int
    member: str
    """the primary killed"""
    pid: int | None
    at: float
    """``time.monotonic()`` of the kill"""
    new_primary: str | None = None
    promoted_s: float | None = None
    rto_s: float | None = None
    seconds_503: float = 0.0
    answers: dict[str, int] = field(default_factory=dict)
    """what the requests answered between the kill and recovery got (status or error)"""
    rejoined_s: float | None = None
    lost: int = 0
    """transfers acknowledged before this kill, missing from the ledger after the drill"""
    problem: str | None = None

    def json(self) -> dict[str, Any]:
        body = asdict(self)
        body.pop("at")
        return body


@dataclass(slots=True)
class DrillReport:
    options: DrillOptions
    kills: list[Kill]
    verdict: Verdict | None
    lost: int
    duplicates: int
    audit_clean: bool
    answers_500: int
    operations: int
    acknowledged: int
    duration_s: float
    data_dir: str
    problems: list[str] = field(default_factory=list)

    @property
    def goal_s(self) -> float:
        return RTO_GOAL_S[self.options.mode]

    def rto(self, quantile: float) -> float | None:
        """Nearest-rank quantile of the RTOs (a kill without recovery counts as infinite)."""
        values = sorted(math.inf if k.rto_s is None else k.rto_s for k in self.kills)
        if not values:
            return None
        return values[max(0, math.ceil(quantile * len(values)) - 1)]

    @property
    def safe(self) -> bool:
        return (
            self.lost == 0
            and self.duplicates == 0
            and self.audit_clean
            and self.answers_500 == 0
            and self.verdict is not None
            and self.verdict.ok
            and not self.problems
        )

    @property
    def within_goal(self) -> bool:
        return bool(self.kills) and all(
            k.rto_s is not None and k.rto_s <= self.goal_s for k in self.kills
        )

    def json(self) -> dict[str, Any]:
        p50, p99 = self.rto(0.5), self.rto(0.99)
        return {
            "ok": self.safe and self.within_goal,
            "safe": self.safe,
            "within_goal": self.within_goal,
            "mode": self.options.mode,
            "kills_requested": self.options.kills,
            "rto_goal_s": self.goal_s,
            "rto_s": {
                "p50": None if p50 is None or math.isinf(p50) else round(p50, 3),
                "p99": None if p99 is None or math.isinf(p99) else round(p99, 3),
            },
            "rpo_lost": self.lost,
            "duplicates": self.duplicates,
            "audit_clean": self.audit_clean,
            "answers_500": self.answers_500,
            "operations": self.operations,
            "acknowledged": self.acknowledged,
            "duration_s": round(self.duration_s, 1),
            "problems": self.problems,
            "kills": [k.json() for k in self.kills],
            "verdict": None if self.verdict is None else self.verdict.json(),
            "data_dir": self.data_dir,
        }


class _Acknowledged:
    """The sent times of acknowledged tries, as operations finish (from the workload's
    loop; read from the drill's thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent: list[float] = []

    async def record(self, op: Op) -> None:
        with self._lock:
            self._sent += [t[0] for t in op.tries if t[2].startswith("2")]

    def first_sent_after(self, at: float) -> float | None:
        with self._lock:
            return min((s for s in self._sent if s >= at), default=None)


def run_drill(options: DrillOptions, say: Callable[[str], None] = lambda _: None) -> DrillReport:
    owned = options.data_dir is None
    directory = Path(tempfile.mkdtemp(prefix="steadypay-drill-")) if owned else options.data_dir
    assert directory is not None
    report: DrillReport | None = None
    try:
        report = _drill(options, directory.absolute(), say)
    finally:
        if owned and report is not None and report.safe and report.within_goal:
            shutil.rmtree(directory, ignore_errors=True)
    return report


def _drill(options: DrillOptions, directory: Path, say: Callable[[str], None]) -> DrillReport:
    goal = RTO_GOAL_S[options.mode]
    env_options = EnvironmentOptions(
        directory, api_workers=options.api_workers, proxies=False, db_nodes=3
    )
    bank = BankOptions(
        wallets=options.wallets,
        clients=options.clients,
        duration_s=24 * 3600.0,  # until the drill stops it
        request_timeout_s=2.0,
        give_up_s=10.0,
        retry_base_s=0.05,
        retry_cap_s=0.25,  # retry often: the first acknowledged write marks recovery
        seed=options.seed if options.seed is not None else secrets.randbelow(2**31),
    )
    say(f"starting steadypay on three database members in {directory} ...")
    started = time.monotonic()
    with ChaosEnvironment(env_options) as env:
        cluster = env.cluster()
        say(f"ready in {time.monotonic() - started:.0f} s: {roles(cluster.status())}")
        client = BankClient(env.api_url, env.admin_key, bank)
        setup = env.run(client.set_up(f"drill{secrets.token_hex(4)}"))
        stop = env.run(_event())
        acknowledged = _Acknowledged()
        workload = env.submit(
            run_workload(client, bank, setup=setup, on_op=acknowledged.record, stop=stop)
        )
        kills: list[Kill] = []
        problems: list[str] = []
        try:
            for number in range(1, options.kills + 1):
                cluster.wait_ready(120)
                time.sleep(options.settle_s)
                kill = _kill_once(env, options.mode, number, goal, acknowledged, say)
                kills.append(kill)
                if kill.problem is not None:
                    problems.append(f"kill {number}: {kill.problem}")
                    break
        finally:
            env.run(_set(stop))
            run = workload.result(timeout=120)
        say(f"workload stopped after {run.duration_s:.0f} s; checking the ledger ...")
        verdict, present = env.run(_verify(env, client, run), timeout=600)
        report = _report(options, directory, run, verdict, present, kills, problems)
    return report


def _kill_once(
    env: ChaosEnvironment,
    mode: Mode,
    number: int,
    goal_s: float,
    acknowledged: _Acknowledged,
    say: Callable[[str], None],
) -> Kill:
    cluster = env.cluster()
    member = cluster.primary_name()
    pid: int | None = None
    if mode == "postmaster":
        at = time.monotonic()  # the SIGKILL is sent now
        pid = cluster.kill_postmaster(member)
    else:
        # Patroni is killed first and the postmaster last: the primary serves until then
        cluster.kill_node(member)
        at = time.monotonic()
    kill = Kill(number, member, pid, at)
    what = "postmaster" if mode == "postmaster" else "Patroni and postmaster"
    say(f"kill {number}: SIGKILL {what} of the primary {member}")
    try:
        kill.new_primary, _ = cluster.wait_primary(member, 60 if mode == "postmaster" else 90)
        kill.promoted_s = time.monotonic() - at
        say(f"  {kill.new_primary} promoted {kill.promoted_s:.1f} s after the kill")
        first = _wait_for(lambda: acknowledged.first_sent_after(at), max(60.0, 4 * goal_s))
        if first is None:
            kill.problem = f"no transfer acknowledged within {max(60.0, 4 * goal_s):g} s"
            return kill
        kill.rto_s = first - at
        say(f"  first acknowledged transfer {kill.rto_s:.2f} s after the kill")
        if mode == "node":
            cluster.restart_member(member, timeout=120)
        cluster.wait_streaming(member, 120)
        kill.rejoined_s = time.monotonic() - at
        say(f"  {member} streaming again as a replica {kill.rejoined_s:.1f} s after the kill")
    except ClusterError as exc:
        kill.problem = str(exc)
    return kill


def _wait_for(value: Callable[[], float | None], within_s: float) -> float | None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        found = value()
        if found is not None:
            return found
        time.sleep(0.05)
    return None


async def _event() -> asyncio.Event:
    return asyncio.Event()


async def _set(event: asyncio.Event) -> None:
    event.set()


async def _verify(
    env: ChaosEnvironment, client: BankClient, run: BankRun
) -> tuple[Verdict, set[str]]:
    """The checker's verdict, and the idempotency keys the ledger holds (after the checker
    resolved the unknown operations)."""
    conn = await asyncpg.connect(env.direct_database_url, timeout=10)
    try:
        verdict = await check(client, run, conn)
        rows = await conn.fetch(
            "SELECT substr(description, 6) AS key FROM transfers WHERE description = ANY($1)",
            [f"bank:{op.key}" for op in run.ops],
        )
        return verdict, {r["key"] for r in rows}
    finally:
        await conn.close()
        await client.aclose()


def _report(
    options: DrillOptions,
    directory: Path,
    run: BankRun,
    verdict: Verdict,
    present: set[str],
    kills: list[Kill],
    problems: list[str],
) -> DrillReport:
    tries = [(t, op) for op in run.ops if op.kind != "reuse" for t in op.tries]
    ends = [k.at for k in kills[1:]] + [math.inf] * bool(kills)
    for kill, until in zip(kills, ends, strict=True):
        recovered = kill.at + kill.rto_s if kill.rto_s is not None else until
        kill.seconds_503 = round(
            _covered([(max(t[0], kill.at), min(t[1], until))
                      for t, _ in tries if t[2] == "503" and t[1] >= kill.at and t[0] < until]),
            3,
        )  # fmt: skip
        kill.answers = dict(
            Counter(t[2] for t, _ in tries if kill.at <= t[1] <= recovered).most_common()
        )
        acked_before = {op.key for t, op in tries if t[2].startswith("2") and t[1] < kill.at}
        kill.lost = len(acked_before - present)
        for attribute in ("promoted_s", "rto_s", "rejoined_s"):
            value = getattr(kill, attribute)
            if value is not None:
                setattr(kill, attribute, round(value, 3))
    acked = {op.key for op in run.ops if op.kind != "reuse" and op.outcome == "ok"}
    by_check = Counter(v.check for v in verdict.violations)
    return DrillReport(
        options=options,
        kills=kills,
        verdict=verdict,
        lost=len(acked - present),
        duplicates=by_check["one_effect_per_key"],
        audit_clean=not any(by_check[c] for c in AUDIT_CHECKS),
        answers_500=sum(t[2] == "500" for t, _ in tries),
        operations=len(run.ops),
        acknowledged=len(acked),
        duration_s=run.duration_s,
        data_dir=str(directory),
        problems=problems,
    )


def _covered(intervals: list[tuple[float, float]]) -> float:
    """The length of the union of ``intervals``."""
    total, reach = 0.0, -math.inf
    for start, end in sorted(intervals):
        if end <= reach or end <= start:
            continue
        total += end - max(start, reach)
        reach = end
    return total
