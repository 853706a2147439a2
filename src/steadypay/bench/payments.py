"""`steadypay bench payments`: steadypay's write path against PostgreSQL's own TPC-B, on one
server and one machine, in one go.

The bench starts a whole steadypay of its own (:class:`~steadypay.chaos.environment.
ChaosEnvironment` without fault proxies: embedded durable PostgreSQL, fraud, notifications, the
API with W uvicorn workers, the relay; each its own process), funds N wallets in-process through
the product's Python API, and runs these phases:

1. ``pgbench``: TPC-B at scale 10 with the same client count (the ceiling);
2. ``single``: ``POST /v1/transfers``, random pairs of the N wallets, fraud service up;
3. ``hot_account``: the same, every transfer paying one merchant wallet;
4. ``half_peak``: an open-loop run at half of phase 2's throughput, for latency;
5. ``batch``: ``POST /v1/transfers/batch`` (reported "not available" if the API lacks it);
6. ``fraud_down``: phase 2 with the fraud service killed (the API's circuit opens and the
   fallback rules decide).

Before each phase the bench waits for the outbox relay to deliver the previous phases' events
(the batch phase leaves tens of thousands), so that each phase pays only for its own. Every
phase reports throughput, latency percentiles, CPU seconds of steadypay's processes,
PostgreSQL's and the load generator's, each API worker's peak RSS, answers by status, the ratio
to pgbench's transactions/s, and the ledger audit that follows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import signal
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from steadypay.bench import loadgen, pgbench, procstats
from steadypay.chaos.environment import ChaosEnvironment, EnvironmentOptions
from steadypay.config import Settings
from steadypay.identity.domain import ADMIN_PRINCIPAL
from steadypay.ledger.audit import audit
from steadypay.ledger.domain import TransferCommand, TransferType
from steadypay.ledger.service import WriteRequest

CURRENCY = "USD"
OPENING_MINOR = 1_000_000
"""each wallet's opening deposit (10,000.00): no transfer of 1.00 runs out of funds"""
Log = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class BenchOptions:
    clients: int = 16
    workers: int = 2
    duration_s: float = 15.0
    wallets: int = 10_000
    scale: int = 10
    batch_size: int = 1_000
    batch_clients: int = 4
    loadgen_processes: int = 2
    warmup_s: float = 2.0
    drain_timeout_s: float = 300.0
    """before each phase, wait this long at most for the outbox relay's backlog to drain"""
    quick: bool = False
    data_dir: Path | None = None

    @classmethod
    def quick_run(cls) -> BenchOptions:
        """A smoke run: every phase for a few seconds (pgbench at scale 1: not a ceiling)."""
        return cls(duration_s=3.0, wallets=1_000, scale=1, batch_size=100, warmup_s=0.5,
                   drain_timeout_s=15.0, quick=True)  # fmt: skip


def run(options: BenchOptions, say: Log = lambda _: None) -> dict[str, Any]:
    """Run every phase; the figures as a JSON-able dict."""
    with contextlib.ExitStack() as stack:
        data_dir = options.data_dir
        if data_dir is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sp-bench-")))
        say(f"starting steadypay ({options.workers} API workers) in {data_dir}")
        env = ChaosEnvironment(
            EnvironmentOptions(
                data_dir=data_dir, api_workers=options.workers, redis=False, proxies=False
            )
        )
        stack.enter_context(env)
        pool = stack.enter_context(loadgen.pool(options.loadgen_processes))
        loadgen.warm(pool, options.loadgen_processes)
        return _Bench(env, pool, options, say).run()
    raise AssertionError("unreachable")  # pragma: no cover - mypy: ExitStack may swallow


class _Bench:
    def __init__(
        self,
        env: ChaosEnvironment,
        pool: ProcessPoolExecutor,
        options: BenchOptions,
        say: Log,
    ) -> None:
        self.env = env
        self.pool = pool
        self.options = options
        self.say = say
        self.run_id = secrets.token_hex(4)
        self.phases: list[dict[str, Any]] = []
        self.pgbench_tps = 0.0

    def run(self) -> dict[str, Any]:
        o = self.options
        started = time.monotonic()
        self.say(f"funding {o.wallets} wallets in-process")
        t0 = time.monotonic()
        wallets, merchant = self.env.run(self._fund(o.wallets), timeout=600)
        setup_s = time.monotonic() - t0
        self.say(f"pgbench -i -s {o.scale}")
        pgbench.initialise(self.env.pg.bin_dir, self.env.direct_database_url, o.scale)

        self._pgbench()
        base = loadgen.Load(
            url=self.env.api_url,
            admin_key=self.env.admin_key,
            wallets=tuple(wallets),
            concurrency=o.clients,
            processes=o.loadgen_processes,
            duration_s=o.duration_s,
            key_prefix=f"bench-{self.run_id}",
        )
        if o.warmup_s > 0:
            self.say("warming up")
            loadgen.run(_replace(base, duration_s=o.warmup_s, key_prefix=f"{base.key_prefix}-w"),
                        self.pool)  # fmt: skip
        single = self._http("single", "POST /v1/transfers, random pairs, fraud up", base)
        self._http(
            "hot_account",
            "POST /v1/transfers, every transfer pays one merchant wallet",
            _replace(base, shape="hot", hot_wallet=merchant),
        )
        peak = single["transfers_per_s"]
        rate = max(1.0, peak / 2)
        self._http(
            "half_peak",
            f"open loop at {rate:.0f}/s (half of single's peak), fraud up",
            _replace(base, rate=rate, concurrency=max(64, 2 * o.clients)),
            target_rate=rate,
        )
        batch = _replace(base, shape="batch", batch_size=o.batch_size,
                         concurrency=min(o.batch_clients, o.clients))  # fmt: skip
        if self._batch_available(wallets):
            self._http(
                "batch",
                f"POST /v1/transfers/batch, {o.batch_size} transfers per request, "
                f"{batch.concurrency} clients",
                batch,
            )
        else:
            self._unavailable("batch", "POST /v1/transfers/batch", "the API answers 404")
        self.say("killing the fraud service (SIGKILL)")
        self.env.signal("fraud", signal.SIGKILL)
        self._http(
            "fraud_down",
            "POST /v1/transfers, random pairs, fraud service killed",
            _replace(base, key_prefix=f"{base.key_prefix}-fd"),
        )
        return {
            "options": {
                "clients": o.clients,
                "api_workers": o.workers,
                "duration_s": o.duration_s,
                "wallets": o.wallets,
                "pgbench_scale": o.scale,
                "batch_size": o.batch_size,
                "batch_clients": batch.concurrency,
                "loadgen_processes": o.loadgen_processes,
                "quick": o.quick,
                "auth": "admin key (no per-user key lookup)",
            },
            "machine": {"cores": procstats.cores()},
            "setup_s": round(setup_s, 2),
            "total_s": round(time.monotonic() - started, 1),
            "phases": self.phases,
            "targets": targets(self.phases),
            "audits_clean": all(p["audit"]["ok"] for p in self.phases if p.get("audit")),
        }

    # --- setup --------------------------------------------------------------------------------
    async def _fund(self, count: int) -> tuple[list[str], str]:
        """``count`` users with a funded USD wallet each, plus an unfunded merchant wallet,
        through the product's own use cases (not HTTP: 3 x count requests would take minutes).
        """
        from steadypay.bootstrap import build

        settings = Settings(
            database_url=self.env.direct_database_url,
            admin_key=self.env.admin_key,
            db_pool_max_size=10,
        )
        container = await build(settings)
        try:
            gate = asyncio.Semaphore(8)

            async def one(i: int) -> uuid.UUID:
                async with gate:
                    user, _ = await container.identity.create_user(
                        f"bench {i}", f"bench-{self.run_id}-{i}@example.com"
                    )
                    return (await container.wallets.open(user.id, CURRENCY)).id

            ids = await asyncio.gather(*(one(i) for i in range(count + 1)))
            merchant = ids.pop()
            for start in range(0, len(ids), 500):
                await container.ledger.execute(
                    [
                        WriteRequest(
                            TransferCommand(
                                id=uuid.uuid4(),
                                type=TransferType.DEPOSIT,
                                from_wallet_id=None,
                                to_wallet_id=wallet,
                                amount=OPENING_MINOR,
                                currency=CURRENCY,
                                initiated_by=ADMIN_PRINCIPAL.scope,
                                description="bench opening deposit",
                            )
                        )
                        for wallet in ids[start : start + 500]
                    ]
                )
        finally:
            await container.close()
        return [str(i) for i in ids], str(merchant)

    # --- phases -------------------------------------------------------------------------------
    def _groups(self) -> dict[str, list[int]]:
        """Process trees to account CPU to: each steadypay service, and PostgreSQL."""
        groups = {
            name: [s.process.pid]
            for name, s in self.env.services.items()
            if s.process is not None and s.process.poll() is None
        }
        info = (self.env.pg.pgdata / "postmaster.pid").read_text().split()
        groups["postgresql"] = [int(info[0])]
        return groups

    def _cpu(self, before: dict[str, float], groups: dict[str, list[int]]) -> dict[str, float]:
        """CPU seconds since ``before``: ``steadypay`` (all its services), ``postgresql``, and
        each service on its own (``api``, ``fraud``...)."""
        used = procstats.delta(before, procstats.snapshot(groups))
        services = {k: v for k, v in used.items() if k != "postgresql"}
        return {"steadypay": sum(services.values()), "postgresql": used["postgresql"], **services}

    def _pgbench(self) -> None:
        o = self.options
        drained = self._drain()
        self.say(f"phase pgbench: TPC-B, {o.clients} clients, {o.duration_s:.0f} s")
        groups = self._groups()
        before = procstats.snapshot(groups)
        result = pgbench.run(self.env.pg.bin_dir, self.env.direct_database_url, o.clients,
                             o.duration_s)  # fmt: skip
        cpu = self._cpu(before, groups)
        cpu["loadgen"] = result.cpu_s
        self.pgbench_tps = result.tps
        phase = self._figures(
            "pgbench",
            f"pgbench TPC-B scale {o.scale}, -c {o.clients} -j 2 -M prepared",
            requests=result.transactions,
            items=result.transactions,
            seconds=result.seconds,
            latencies=result.latencies_ms,
            statuses={"ok": result.transactions, "failed": result.failed},
            cpu=cpu,
        )
        phase["transfers_per_s"] = round(result.tps, 1)  # pgbench's own figure
        phase["ratio_to_pgbench"] = 1.0
        phase["outbox_drain"] = drained
        self.phases.append(phase)

    def _http(
        self, name: str, title: str, load: loadgen.Load, target_rate: float | None = None
    ) -> dict[str, Any]:
        drained = self._drain()
        self.say(f"phase {name}: {title}")
        groups = self._groups()
        # the load generator starts sending 0.5 s after run() is called: snapshot just then
        before = procstats.snapshot(groups)
        result = loadgen.run(_replace(load, key_prefix=f"{load.key_prefix}-{name}"), self.pool,
                             start_in_s=0.5)  # fmt: skip
        cpu = self._cpu(before, groups)
        cpu["loadgen"] = result.cpu_s
        phase = self._figures(
            name,
            title,
            requests=result.requests,
            items=result.items,
            seconds=result.seconds,
            latencies=result.latencies_ms,
            statuses=result.statuses,
            cpu=cpu,
            idle_s=0.5,
        )
        phase["loadgen_busiest_process_pct"] = round(100 * result.busiest_cpu_share, 1)
        phase["outbox_drain"] = drained
        if target_rate is not None:
            phase["target_rate_per_s"] = round(target_rate, 1)
            phase["late_sends"] = result.late
        phase["audit"] = self._audit()
        self.phases.append(phase)
        return phase

    def _drain(self) -> dict[str, Any]:
        """Wait (up to ``drain_timeout_s``) until the relay has sent every due outbox event,
        so that no phase pays for the previous one's backlog: each then carries the relay's
        and notification service's work for its own transfers only."""
        t0 = time.monotonic()
        deadline = t0 + self.options.drain_timeout_s
        backlog = due = self.env.run(_due_events(self.env.direct_database_url), timeout=30)
        while due and time.monotonic() < deadline:
            time.sleep(0.25)
            due = self.env.run(_due_events(self.env.direct_database_url), timeout=30)
        if backlog:
            self.say(f"  outbox: {backlog} events due, {due} left after "
                     f"{time.monotonic() - t0:.1f} s")  # fmt: skip
        seconds = time.monotonic() - t0
        drained: dict[str, Any] = {"due": backlog, "left": due, "seconds": round(seconds, 1)}
        if backlog and seconds > 1:
            drained["relay_events_per_s"] = round((backlog - due) / seconds, 1)
        return drained

    def _unavailable(self, name: str, title: str, why: str) -> None:
        self.say(f"phase {name}: not available ({why})")
        self.phases.append({"name": name, "title": title, "available": False, "note": why})

    def _batch_available(self, wallets: list[str]) -> bool:
        body = {
            "transfers": [{"from_wallet_id": wallets[0], "to_wallet_id": wallets[1],
                           "amount": "1.00", "currency": CURRENCY}],
            "atomic": False,
        }  # fmt: skip
        headers = {
            "Authorization": f"Bearer {self.env.admin_key}",
            "Idempotency-Key": f"bench-{self.run_id}-probe",
        }
        answer = httpx.post(f"{self.env.api_url}/v1/transfers/batch", json=body,
                            headers=headers, timeout=30)  # fmt: skip
        return answer.status_code not in (404, 405)

    def _figures(
        self,
        name: str,
        title: str,
        *,
        requests: int,
        items: int,
        seconds: float,
        latencies: list[float],
        statuses: dict[str, int],
        cpu: dict[str, float],
        idle_s: float = 0.0,
    ) -> dict[str, Any]:
        window = seconds + idle_s  # CPU was measured over the run plus the start delay
        capacity = procstats.cores() * window
        tps = items / seconds if seconds else 0.0
        rss = {str(pid): procstats.peak_rss_mb(pid) for pid in self._api_workers()}
        return {
            "name": name,
            "title": title,
            "available": True,
            "transfers_per_s": round(tps, 1),
            "requests_per_s": round(requests / seconds, 1) if seconds else 0.0,
            "requests": requests,
            "transfers": items,
            "seconds": round(seconds, 2),
            "latency_ms": percentiles(latencies),
            "cpu_s": {k: round(v, 2) for k, v in cpu.items()},
            "cpu_pct_of_machine": {k: round(100 * v / capacity, 1) for k, v in cpu.items()},
            "cpu_ms_per_transfer": {
                k: round(1000 * v / items, 3) if items else None for k, v in cpu.items()
            },
            "peak_rss_mb_per_api_worker": {k: round(v, 1) for k, v in rss.items() if v},
            "statuses": dict(sorted(statuses.items())),
            "ratio_to_pgbench": round(tps / self.pgbench_tps, 3) if self.pgbench_tps else None,
        }

    def _api_workers(self) -> list[int]:
        try:
            return self.env.worker_pids("api")
        except RuntimeError:
            return []

    def _audit(self) -> dict[str, Any]:
        t0 = time.monotonic()
        report = self.env.run(_audit(self.env.direct_database_url), timeout=600)
        figures = {
            "ok": report.ok,
            "violations": sum(c.violations for c in report.checks),
            "failed_checks": [c.name for c in report.checks if not c.ok],
            "transfers": report.transfers,
            "seconds": round(time.monotonic() - t0, 2),
        }
        self.say(f"  ledger audit: {'clean' if report.ok else 'VIOLATED'} "
                 f"({report.transfers} transfers, {figures['seconds']} s)")  # fmt: skip
        return figures


async def _due_events(url: str) -> int:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        due: int = await conn.fetchval(
            "SELECT count(*) FROM outbox_events"
            " WHERE status = 'pending' AND next_attempt_at <= now()"
        )
        return due
    finally:
        await conn.close()


async def _audit(url: str) -> Any:
    conn = await asyncpg.connect(url, timeout=10)
    try:
        return await audit(conn)
    finally:
        await conn.close()


def _replace(load: loadgen.Load, **changes: Any) -> loadgen.Load:
    from dataclasses import replace

    return replace(load, **changes)


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)], 2)

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": round(ordered[-1], 2)}


def targets(phases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured figure and whether it is met."""
    by = {p["name"]: p for p in phases if p.get("available")}

    def tps(name: str) -> float | None:
        return by[name]["transfers_per_s"] if name in by else None

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 3) if a is not None and b else None

    rss = [mb for p in by.values() for mb in p.get("peak_rss_mb_per_api_worker", {}).values()]
    half = by.get("half_peak", {}).get("latency_ms", {}).get("p99")
    rows = [
        ("single-transfer API / pgbench", ratio(tps("single"), tps("pgbench")), ">=", 0.5),
        ("hot account / single", ratio(tps("hot_account"), tps("single")), ">=", 0.8),
        ("batch endpoint / pgbench", ratio(tps("batch"), tps("pgbench")), ">=", 10.0),
        ("p99 at half of peak (ms)", half, "<=", 25.0),
        ("peak RSS per API worker (MB)", max(rss) if rss else None, "<=", 200.0),
        ("fraud down / fraud up", ratio(tps("fraud_down"), tps("single")), ">=", 0.9),
    ]
    return [
        {
            "target": what,
            "measured": value,
            "goal": f"{op} {goal:g}",
            "met": None if value is None else (value >= goal if op == ">=" else value <= goal),
        }
        for what, value, op, goal in rows
    ]
