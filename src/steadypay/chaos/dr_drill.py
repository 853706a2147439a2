"""`steadypay drill dr`: lose a whole region under the bank workload, fail over with the
runbook from the DR copy alone, and count what was lost.

On one machine, against moto's S3/KMS/Route 53/SNS (:mod:`steadypay.chaos.aws`):

1. **Region A**: ``steadypay up`` with backups on (us-east-1's bucket, WAL also straight to
   us-west-2's), its backup agent takes and verifies a first base backup (the drill waits for
   ``/health/ready``'s ``backup:verifiedAge`` to pass).
2. The bank workload runs against region A for ``workload_s``.
3. **Disaster**: every process of region A is SIGKILLed (the supervisor, the services, the
   postmaster and its children) and its data directory is deleted. Nothing of it survives but
   what the buckets hold.
4. ``steadypay dr failover --to us-west-2`` runs (as an operator runs it) into region B's new
   data directory; it reads only the us-west-2 bucket.
5. The ledger of region B is checked: every transfer acknowledged (201) in region A is present
   exactly once or listed as missing; missing ones are the RPO, in transfers and in seconds
   (from the oldest missing acknowledgement to the kill); duplicates must be 0; the ledger
   audit clean. RTO: from the kill to the first payment acknowledged in region B (the
   runbook's canary).

Goals (issue 13): RTO ≤ 60 s, RPO ≤ 5 s, 0 duplicates, audit clean.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil

from steadypay.chaos.aws import AwsEmulator, create_two_regions
from steadypay.chaos.bank import BankClient, BankOptions, BankRun, run_workload
from steadypay.db._pgproc import free_port, read_pidfile
from steadypay.db.embedded import EmbeddedPostgres, EmbeddedPostgresError
from steadypay.dr import stop_region
from steadypay.ledger.audit import audit

RTO_GOAL_S = 60.0
RPO_GOAL_S = 5.0
PRIMARY, DR = "us-east-1", "us-west-2"


@dataclass(frozen=True, slots=True)
class DrDrillOptions:
    data_dir: Path | None = None
    workload_s: float = 20.0
    clients: int = 4
    wallets: int = 8
    seed: int | None = None
    ready_timeout_s: float = 180.0


@dataclass(slots=True)
class DrDrillReport:
    directory: str
    acknowledged: int
    present: int
    missing: list[dict[str, Any]]
    duplicates: int
    audit_clean: bool
    rto_s: float | None
    rpo_s: float
    runbook_ok: bool
    runbook_steps: list[dict[str, Any]]
    dns_weights: dict[str, int]
    killed_at: str
    timings: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def safe(self) -> bool:
        return self.runbook_ok and self.duplicates == 0 and self.audit_clean and not self.problems

    @property
    def within_goal(self) -> bool:
        return self.rto_s is not None and self.rto_s <= RTO_GOAL_S and self.rpo_s <= RPO_GOAL_S

    def json(self) -> dict[str, Any]:
        return asdict(self) | {"safe": self.safe, "within_goal": self.within_goal,
                               "rto_goal_s": RTO_GOAL_S, "rpo_goal_s": RPO_GOAL_S}  # fmt: skip


def run_dr_drill(
    options: DrDrillOptions, say: Callable[[str], None] = lambda _: None
) -> DrDrillReport:
    owned = options.data_dir is None
    directory = Path(tempfile.mkdtemp(prefix="steadypay-dr-drill-")) if owned else options.data_dir
    assert directory is not None
    directory = directory.absolute()
    directory.mkdir(parents=True, exist_ok=True)
    report: DrDrillReport | None = None
    try:
        report = _drill(options, directory, say)
    finally:
        if owned and report is not None and report.safe and report.within_goal:
            shutil.rmtree(directory, ignore_errors=True)
    return report


def _drill(options: DrDrillOptions, directory: Path, say: Callable[[str], None]) -> DrDrillReport:
    timings: dict[str, float] = {}
    with AwsEmulator(directory / "aws") as aws:
        aws_env = aws.env(PRIMARY)
        saved = {k: os.environ.get(k) for k in aws_env}
        os.environ.update(aws_env)
        try:
            regions = create_two_regions(aws.url, PRIMARY, DR, secrets.token_hex(3))
            env = os.environ | aws_env | regions.settings_env()
            region_a, region_b = directory / "region-a", directory / "region-b"
            ports_a = [free_port("127.0.0.1") for _ in range(3)]
            ports_b = [free_port("127.0.0.1") for _ in range(3)]
            began = time.monotonic()
            say(f"region A ({PRIMARY}): steadypay up with backups in {region_a} …")
            up = _start_up(region_a, ports_a, env)
            try:
                api_a = f"http://127.0.0.1:{ports_a[0]}"
                _wait_verified_backup(api_a, up, options.ready_timeout_s, region_a)
                timings["region_a_ready_s"] = round(time.monotonic() - began, 1)
                say(f"region A ready, first backup verified, in {timings['region_a_ready_s']} s")
                admin_key = (region_a / "admin.key").read_text().strip()
                run, killed_at, killed_wall = _workload_then_disaster(
                    api_a, admin_key, options, up, region_a, say
                )
            finally:
                _kill_region(up, region_a)
            say(f"region A destroyed at {killed_wall.isoformat()}")
            say(f"region B ({DR}): steadypay dr failover --to {DR} …")
            report_file = directory / "failover.json"
            failover = subprocess.run(
                [sys.executable, "-m", "steadypay", "dr", "failover", "--to", DR,
                 "--data-dir", str(region_b), "--port", str(ports_b[0]),
                 "--fraud-port", str(ports_b[1]), "--notification-port", str(ports_b[2]),
                 "--failed-at", killed_wall.isoformat(), "--dns-value", f"{DR}.api.steadypay.test",
                 "--yes", "--json", str(report_file)],
                env=env | {"AWS_DEFAULT_REGION": DR}, stdin=subprocess.DEVNULL,
                capture_output=True, text=True, timeout=600, check=False,
            )  # fmt: skip
            timings["runbook_s"] = round(time.monotonic() - killed_at, 1)
            (directory / "failover.log").write_text(failover.stdout + failover.stderr)
            try:
                runbook = json.loads(report_file.read_text())
            except (OSError, json.JSONDecodeError):
                runbook = {"ok": False, "steps": [], "rto_s": None}
            say(f"runbook {'OK' if runbook['ok'] else 'FAILED'} in {timings['runbook_s']} s")
            try:
                checked = asyncio.run(_check(region_b, run, killed_wall))
            except (OSError, asyncpg.PostgresError, EmbeddedPostgresError) as exc:
                checked = _unchecked(run, f"region B's ledger could not be read: {exc}")
            finally:
                stop_region(region_b)
                EmbeddedPostgres(region_b).stop(mode="fast")
            weights = regions.weights()
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    problems = [] if failover.returncode == 0 else [
        f"dr failover exited {failover.returncode}: {failover.stderr[-1500:]}"]  # fmt: skip
    problems += checked.pop("problems", [])
    if weights.get(DR) != 100 or weights.get(PRIMARY) != 0:
        problems.append(f"DNS not switched: weights {weights}")
    return DrDrillReport(
        directory=str(directory),
        acknowledged=checked["acknowledged"],
        present=checked["present"],
        missing=checked["missing"],
        duplicates=checked["duplicates"],
        audit_clean=checked["audit_clean"],
        rto_s=runbook.get("rto_s"),
        rpo_s=checked["rpo_s"],
        runbook_ok=bool(runbook.get("ok")),
        runbook_steps=runbook.get("steps", []),
        dns_weights=weights,
        killed_at=killed_wall.isoformat(),
        timings=timings,
        problems=problems,
    )


def _start_up(data_dir: Path, ports: list[int], env: dict[str, str]) -> subprocess.Popen[bytes]:
    data_dir.mkdir(parents=True, exist_ok=True)
    log = (data_dir.parent / f"{data_dir.name}.log").open("ab")
    argv = [sys.executable, "-m", "steadypay", "up", "--data-dir", str(data_dir),
            "--port", str(ports[0]), "--fraud-port", str(ports[1]),
            "--notification-port", str(ports[2])]  # fmt: skip
    process = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True
    )
    log.close()
    return process


def _wait_verified_backup(
    api: str, up: subprocess.Popen[bytes], within_s: float, data_dir: Path
) -> None:
    deadline = time.monotonic() + within_s
    while True:
        try:
            ready = httpx.get(f"{api}/health/ready", timeout=2.0).json()
            check = ready.get("checks", {}).get("backup:verifiedAge", [{}])[0]
            if check.get("status") == "pass":
                return
        except (httpx.HTTPError, ValueError):
            pass
        if up.poll() is not None:
            raise RuntimeError(f"region A's steadypay up exited: see {data_dir}.log")
        if time.monotonic() > deadline:
            raise RuntimeError(f"no verified backup in region A within {within_s:g} s")
        time.sleep(0.5)


def _workload_then_disaster(
    api: str,
    admin_key: str,
    options: DrDrillOptions,
    up: subprocess.Popen[bytes],
    data_dir: Path,
    say: Callable[[str], None],
) -> tuple[BankRun, float, datetime]:
    """Run the bank workload; at ``workload_s``, destroy region A while it runs."""
    bank = BankOptions(
        wallets=options.wallets,
        clients=options.clients,
        duration_s=24 * 3600.0,
        request_timeout_s=2.0,
        give_up_s=2.0,
        seed=options.seed if options.seed is not None else secrets.randbelow(2**31),
    )
    killed: dict[str, Any] = {}

    async def go() -> BankRun:
        client = BankClient(api, admin_key, bank)
        try:
            setup = await client.set_up(f"dr{secrets.token_hex(4)}")
            stop = asyncio.Event()
            say(f"bank workload on region A for {options.workload_s:g} s …")
            task = asyncio.create_task(run_workload(client, bank, setup=setup, stop=stop))
            await asyncio.sleep(options.workload_s)
            killed["at"], killed["wall"] = time.monotonic(), datetime.now(UTC)
            await asyncio.to_thread(_kill_region, up, data_dir)
            stop.set()
            return await task
        finally:
            await client.aclose()

    run = asyncio.run(go())
    return run, killed["at"], killed["wall"]


def _kill_region(up: subprocess.Popen[bytes], data_dir: Path) -> None:
    """SIGKILL every process of the region (its `up`, the services, the postmaster, which
    pg_ctl daemonised out of `up`'s tree) and delete its data directory."""
    victims: list[psutil.Process] = []
    try:
        root = psutil.Process(up.pid)
        victims += [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        pass
    pid = read_pidfile(data_dir / "pgdata")
    if pid is not None:
        try:
            postmaster = psutil.Process(pid.pid)
            victims += [postmaster, *postmaster.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    for process in victims:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGKILL)
    psutil.wait_procs(victims, timeout=10)
    up.poll()
    shutil.rmtree(data_dir, ignore_errors=True)


def _unchecked(run: BankRun, problem: str) -> dict[str, Any]:
    acked = {op.key for op in run.ops if op.outcome == "ok" and op.transfer_id is not None}
    return {"acknowledged": len(acked), "present": 0, "missing": [], "duplicates": 0,
            "audit_clean": False, "rpo_s": math.inf, "problems": [problem]}  # fmt: skip


async def _check(region_b: Path, run: BankRun, killed_wall: datetime) -> dict[str, Any]:
    node = EmbeddedPostgres(region_b)
    conn = await asyncpg.connect(node.url, timeout=10)
    try:
        rows = await conn.fetch(
            "SELECT substr(description, 6) AS key, count(*) AS n FROM transfers "
            "WHERE description LIKE 'bank:%' GROUP BY description"
        )
        report = await audit(conn)
    finally:
        await conn.close()
    held = {r["key"]: r["n"] for r in rows}
    # one entry per idempotency key: the workload replays some keys on purpose
    acked = list({op.key: op for op in run.ops
                  if op.outcome == "ok" and op.transfer_id is not None}.values())  # fmt: skip
    missing: list[dict[str, Any]] = []
    before_kill: list[float] = []
    for op in acked:
        if op.key not in held:
            ago = round(killed_wall.timestamp() - (run.started_at + op.ended), 3)
            before_kill.append(ago)
            missing.append(
                {"key": op.key, "transfer_id": op.transfer_id, "acknowledged_s_before_kill": ago}
            )
    rpo = max(before_kill, default=0.0)
    return {
        "acknowledged": len(acked),
        "present": sum(1 for op in acked if op.key in held),
        "missing": missing,
        "duplicates": sum(n - 1 for n in held.values() if n > 1),
        "audit_clean": report.ok,
        "rpo_s": max(0.0, rpo),
    }
