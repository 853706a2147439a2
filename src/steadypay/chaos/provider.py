"""steadypay's probes and actions for Chaos Toolkit experiments (a Python provider module).

Experiments name these functions (``"module": "steadypay.chaos.provider"``). They act on the
:class:`~steadypay.chaos.environment.ChaosEnvironment` the runner installed with
:func:`install`, and run the bank workload in the background so that every experiment measures
money safety, availability and recovery while its fault is on.

Every action that starts a fault marks its start; :func:`restore` ends it (and is idempotent:
it is both the method's last step and the experiment's rollback, and rollbacks always run).

The cluster's faults (:func:`kill_primary_postmaster`, :func:`lose_primary_node`,
:func:`kill_replica`, :func:`partition_primary`, :func:`lag_replica`) need an environment
started with ``db_nodes=3``; what they observe (who the new primary is, how long the failover
took, the router's decisions) goes into the experiment's ``details``, and what a probe finds
wrong beyond the bank checker's verdict into its ``violations``.
"""

from __future__ import annotations

import dataclasses
import signal as signals
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from steadypay.chaos.bank import BankClient, BankOptions, BankRun, Op, run_workload
from steadypay.chaos.checker import Verdict, check
from steadypay.chaos.environment import ChaosEnvironment
from steadypay.chaos.proxy import Bandwidth, FaultProxy, Latency, ResetPeer, Timeout, Toxic


@dataclass(slots=True)
class BankState:
    client: BankClient
    future: Future[BankRun]
    started: float
    run: BankRun | None = None
    verdict: Verdict | None = None
    ops_seen: list[Op] = field(default_factory=list)


@dataclass(slots=True)
class Runtime:
    env: ChaosEnvironment
    bank_options: BankOptions
    bank: BankState | None = None
    notifications: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    """what the experiment observed (failover times, router decisions), for its report"""
    violations: list[str] = field(default_factory=list)
    """what a probe found wrong besides the bank checker (read-your-writes, routing)"""


_RUNTIME: Runtime | None = None


def install(env: ChaosEnvironment, bank_options: BankOptions) -> None:
    global _RUNTIME
    _RUNTIME = Runtime(env, bank_options)


def runtime() -> Runtime:
    if _RUNTIME is None:
        raise RuntimeError("no chaos environment installed (run through `steadypay chaos`)")
    return _RUNTIME


def reset() -> None:
    """Forget the last experiment's workload (a new experiment starts clean)."""
    rt = runtime()
    rt.bank = None
    rt.notifications = False
    rt.details = {}
    rt.violations = []
    rt.env.marks.faults.clear()


# --- probes -----------------------------------------------------------------------------------
def health_ready(service: str = "api") -> int:
    """The HTTP status of a service's ``/health/ready`` (0 when it does not answer)."""
    env = runtime().env
    url = env.api_url if service == "api" else f"http://127.0.0.1:{env.services[service].port}"
    try:
        return httpx.get(f"{url}/health/ready", timeout=3).status_code
    except httpx.HTTPError:
        return 0


def wait_ready(within_s: float = 60.0) -> bool:
    """Until every service answers ``/health/ready`` 200 (a recovery wait, not a fault)."""
    runtime().env.wait_ready(within_s)
    return True


def bank_violations() -> int:
    """Violations found by the checker on this experiment's workload (0 before it ran)."""
    bank = runtime().bank
    if bank is None or bank.verdict is None:
        return 0
    return len(bank.verdict.violations)


def probe_violations() -> int:
    """Violations found by this experiment's other probes (read-your-writes, routing)."""
    return len(runtime().violations)


# --- the workload -----------------------------------------------------------------------------
def start_bank(duration_s: float, check_notifications: bool = False) -> dict[str, Any]:
    """Set up wallets (before any fault) and run the bank workload for ``duration_s`` in the
    background."""
    rt = runtime()
    env = rt.env
    options = dataclasses.replace(rt.bank_options, duration_s=duration_s)
    client = BankClient(env.api_url, env.admin_key, options)
    setup = env.run(client.set_up(f"x{int(time.time() * 1000) % 10**9}"))
    future = env.submit(run_workload(client, options, setup=setup))
    rt.bank = BankState(client, future, time.monotonic())
    rt.notifications = check_notifications
    return {"wallets": len(setup.wallets), "duration_s": duration_s}


def finish_bank(timeout_s: float = 120.0) -> dict[str, Any]:
    """Wait for the workload, then run the checker (unknown operations are resolved now)."""
    rt = runtime()
    bank = rt.bank
    if bank is None:
        raise RuntimeError("start_bank was not called")
    bank.run = bank.future.result(timeout_s)
    env = rt.env

    async def verdict() -> Verdict:
        conn = await asyncpg.connect(env.direct_database_url, timeout=10)
        try:
            assert bank.run is not None
            return await check(
                bank.client, bank.run, conn, notifications=rt.notifications, notify_within_s=60
            )
        finally:
            await conn.close()
            await bank.client.aclose()

    bank.verdict = env.run(verdict(), timeout=300)
    return bank.verdict.json()


# --- faults -----------------------------------------------------------------------------------
def kill_service(name: str) -> int:
    """SIGKILL a service (its whole process group)."""
    env = runtime().env
    env.marks.start(f"kill {name}")
    return env.signal(name, signals.SIGKILL)


def kill_api_worker() -> int:
    """SIGKILL one uvicorn worker of the API (the parent starts a new one)."""
    env = runtime().env
    env.marks.start("kill api worker")
    return env.kill_worker("api")


def pause_service(name: str) -> int:
    """SIGSTOP a service: it holds its connections and answers nothing."""
    env = runtime().env
    env.marks.start(f"pause {name}")
    return env.signal(name, signals.SIGSTOP)


def kill_postgres() -> int:
    env = runtime().env
    env.marks.start("kill postgresql")
    return env.kill_postgres()


# --- faults of the Patroni cluster (db_nodes=3) ----------------------------------------------
def kill_primary_postmaster() -> dict[str, Any]:
    """SIGKILL the primary's postmaster; Patroni promotes a synchronous standby."""
    rt = runtime()
    member = rt.env.primary_name()
    rt.env.marks.start(f"kill postmaster of primary {member}")
    member, pid = rt.env.kill_primary_postmaster()
    rt.details["killed"] = member
    return {"member": member, "pid": pid}


def lose_primary_node() -> str:
    """SIGKILL the primary's Patroni and postmaster: the node is gone until :func:`restore`."""
    rt = runtime()
    member = rt.env.primary_name()
    rt.env.marks.start(f"lose node of primary {member}")
    rt.env.lose_primary_node()
    rt.details["killed"] = member
    return member


def wait_for_failover(within_s: float = 60.0) -> dict[str, Any]:
    """Until a member other than the one killed is the primary (Patroni's decision)."""
    rt = runtime()
    killed = rt.details.get("killed")
    new, _ = rt.env.cluster().wait_primary(killed, within_s)
    since = time.monotonic() - rt.env.marks.faults[-1].started
    rt.details |= {"new_primary": new, "failover_s": round(since, 2)}
    return {"new_primary": new, "since_kill_s": round(since, 2)}


def kill_replica() -> str:
    """SIGKILL a replica's Patroni and postmaster: writes go on with the other standby."""
    rt = runtime()
    rt.env.marks.start("lose a replica node")
    member = rt.env.kill_replica()
    rt.details["killed"] = member
    return member


def partition_primary() -> str:
    """The primary's fault proxy becomes a black hole (the services lose it; the members do
    not, so Patroni keeps it the primary)."""
    rt = runtime()
    rt.env.marks.start("primary partitioned")
    member = rt.env.partition_primary()
    rt.details["partitioned"] = member
    return member


def lag_replica() -> str:
    """Pause replay on a replica: its data falls behind while it still acknowledges WAL."""
    rt = runtime()
    rt.env.marks.start("replica replay paused")
    member = rt.env.lag_replica()
    rt.details["lagging"] = member
    return member


def read_your_writes(duration_s: float, settle_s: float = 1.5) -> dict[str, Any]:
    """For ``duration_s``: write, then read it back with and without the consistency token;
    count the router's decisions (the API's ``/metrics``) from ``settle_s`` on. A read with
    the token that misses its write, or a ``BOUNDED`` read sent to the lagging replica once
    its lag is past the bound, is a violation."""
    from steadypay.chaos.consistency import read_your_writes as probe

    rt = runtime()
    result = probe(rt.env, duration_s, lagging=rt.details.get("lagging"), settle_s=settle_s)
    rt.details |= result.details()
    rt.violations += result.violations
    return result.details()


def add_toxic(proxy: str, toxic: str, name: str = "chaos", **arguments: Any) -> dict[str, Any]:
    """Add a toxic to a proxy (``postgresql``, ``redis``, ``fraud``): ``latency``,
    ``bandwidth``, ``timeout``, ``reset_peer``."""
    kinds: dict[str, type[Toxic]] = {
        "latency": Latency,
        "bandwidth": Bandwidth,
        "timeout": Timeout,
        "reset_peer": ResetPeer,
    }
    env = runtime().env
    made = kinds[toxic](**arguments)
    target = env.proxy(proxy)

    async def add() -> None:  # proxies live on the environment's loop
        target.add(name, made)

    env.marks.start(f"{toxic} on {proxy}")
    env.run(add())
    return {"proxy": proxy, "toxic": toxic, **arguments}


def proxy_down(proxy: str) -> bool:
    """Cut a proxy: every connection closed, new ones refused."""
    env = runtime().env
    env.marks.start(f"{proxy} down")
    env.run(env.proxy(proxy).down())
    return True


def inject(rules: list[dict[str, Any]], duration_s: float = 120.0, seed: int | None = None) -> int:
    """In-process faults in every service, through ``PUT /v1/admin/chaos``."""
    env = runtime().env
    env.marks.start("in-process faults")
    body = {"enabled": True, "rules": rules, "duration_s": duration_s, "seed": seed}
    r = httpx.put(f"{env.api_url}/v1/admin/chaos", json=body, headers=_admin(env), timeout=10)
    r.raise_for_status()
    return r.status_code


# --- restoring (idempotent: the method's last fault step and every rollback) -------------------
def restore(wait_s: float = 60.0) -> dict[str, Any]:
    """Undo every fault: proxies up and clean, PostgreSQL and services running, in-process
    faults off; then wait for readiness. Marks the end of the fault window."""
    env = runtime().env
    env.marks.end()
    done: list[str] = []
    for name, proxy in env.proxies.items():
        if proxy.toxics or not proxy.is_up:
            env.run(_heal(proxy))
            done.append(f"proxy {name}")
    if env.db_cluster is not None:
        done += env.restore_cluster(max(wait_s, 120.0))
    elif not env.postgres_running():
        env.restart_postgres()
        done.append("postgresql restarted")
    for name in env.services:
        if not env.is_running(name) or name in _paused(env):
            done.append(f"{name} restarted")
        env.restart(name)  # start it if dead, SIGCONT if paused, nothing otherwise
    deadline = time.monotonic() + wait_s
    while True:
        try:
            r = httpx.put(
                f"{env.api_url}/v1/admin/chaos",
                json={"enabled": False},
                headers=_admin(env),
                timeout=5,
            )
            if r.status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("could not switch in-process faults off")
        time.sleep(0.2)
    env.wait_ready(max(1.0, deadline - time.monotonic()))
    return {"restored": done}


async def _heal(proxy: FaultProxy) -> None:
    proxy.clear()
    await proxy.up()


def _paused(env: ChaosEnvironment) -> set[str]:
    paused = set()
    for name, service in env.services.items():
        if service.process is not None and service.process.poll() is None:
            try:
                stat = Path(f"/proc/{service.process.pid}/stat").read_text()
            except OSError:
                continue
            state = stat.rsplit(")", 1)[1].split()[0]
            if state == "T":
                paused.add(name)
    return paused


def _admin(env: ChaosEnvironment) -> dict[str, str]:
    return {"Authorization": f"Bearer {env.admin_key}"}
