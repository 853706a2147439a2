"""A whole steadypay, started for chaos experiments, with a handle on every part.

:class:`ChaosEnvironment` starts, in a directory of its own:

- an embedded PostgreSQL (durable: fsync and synchronous_commit on, so a crash may lose only
  what was never acknowledged) or, with ``db_nodes=3``, a synchronous three-member Patroni
  cluster (:mod:`steadypay.chaos.cluster`), the services writing through the multi-host URL
  and reading from the members (``STEADYPAY_DATABASE_READ_URLS``);
- a redis-server of its own, when the binary is installed;
- a :class:`~steadypay.chaos.proxy.FaultProxy` in front of PostgreSQL (of each member, named
  ``postgresql-<member>``, in a cluster), Redis and the fraud service, through which the
  services reach them;
- the fraud service, the notification service, the API (several uvicorn workers) and the outbox
  relay, each a process of its own, its output in ``logs/<name>.log``.

Process actions (:meth:`signal`, :meth:`restart`, :meth:`kill_postgres`,
:meth:`restart_postgres`), the cluster's (:meth:`kill_primary_postmaster`,
:meth:`lose_primary_node`, :meth:`kill_replica`, :meth:`partition_primary`,
:meth:`lag_replica`, ...) and the proxies are what the experiments' actions call; an asyncio
loop in a background thread runs the proxies and the bank workload.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import structlog

from steadypay.chaos.cluster import ClusterDatabase
from steadypay.chaos.proxy import FaultProxy, Timeout
from steadypay.db.embedded import EmbeddedPostgres
from steadypay.db.migrate import upgrade
from steadypay.ha import MemberStatus

log = structlog.get_logger(__name__)

T = TypeVar("T")
SERVICES = ("fraud", "notifications", "api", "relay")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class EnvironmentOptions:
    data_dir: Path
    api_workers: int = 2
    redis: bool = True
    """start a redis-server of our own if the binary is found (else run without Redis)"""
    ready_timeout_s: float = 90.0
    proxies: bool = True
    """put a fault proxy in front of PostgreSQL, Redis and fraud; False: services connect to
    them directly (for benchmarks: no Python proxy in the data path)"""
    db_nodes: int = 1
    """1: one embedded PostgreSQL; 3: a synchronous Patroni cluster of three members"""

    def __post_init__(self) -> None:
        if self.db_nodes not in (1, 3):
            raise ValueError(f"db_nodes must be 1 or 3, not {self.db_nodes}")


@dataclass(slots=True)
class Service:
    name: str
    argv: list[str]
    env: dict[str, str]
    port: int | None = None
    process: subprocess.Popen[bytes] | None = None
    log: Any = None
    restarts: int = 0


@dataclass(slots=True)
class FaultMark:
    name: str
    started: float
    ended: float | None = None


@dataclass(slots=True)
class Marks:
    """When faults started and ended (``time.monotonic()``), for the experiment's report."""

    faults: list[FaultMark] = field(default_factory=list)

    def start(self, name: str) -> None:
        self.faults.append(FaultMark(name, time.monotonic()))

    def end(self) -> None:
        for mark in self.faults:
            if mark.ended is None:
                mark.ended = time.monotonic()


class ChaosEnvironment:
    def __init__(self, options: EnvironmentOptions) -> None:
        self.options = options
        self.data_dir = options.data_dir.absolute()
        self.admin_key = "chaos-admin-" + secrets.token_urlsafe(24)
        self.internal_key = "chaos-internal-" + secrets.token_urlsafe(24)
        """what the services accept from each other (not derived: as in production)"""
        self.pg = EmbeddedPostgres(self.data_dir, port=free_port())
        self.db_cluster = (
            ClusterDatabase(self.data_dir / "cluster", options.db_nodes)
            if options.db_nodes > 1
            else None
        )
        """the Patroni cluster (``db_nodes=3``); None with one embedded PostgreSQL"""
        self.database_read_urls: list[str] = []
        """the services' replica URLs (a cluster's members, through their proxies)"""
        self.redis_port: int | None = None
        self._redis: subprocess.Popen[bytes] | None = None
        self.proxies: dict[str, FaultProxy] = {}
        self.services: dict[str, Service] = {}
        self.marks = Marks()
        self.api_url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.database_url = ""
        """the services' URL: through the PostgreSQL proxy"""
        self.direct_database_url = ""
        """the checker's URL: straight to PostgreSQL"""

    # --- the background loop ------------------------------------------------------------------
    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coroutine`` on the environment's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "logs").mkdir(exist_ok=True)
        self._thread.start()
        if self.db_cluster is not None:
            self._start_cluster()
            return
        self.pg.init()
        self.pg.start()
        self.direct_database_url = self.pg.url
        upgrade(self.direct_database_url)
        if self.options.redis and shutil.which("redis-server"):
            self._start_redis()
        fraud_port = free_port()
        self.database_url = self.direct_database_url
        fraud_via, redis_via = fraud_port, self.redis_port
        if self.options.proxies:
            self.run(self._open_proxy("postgresql", "127.0.0.1", self.pg.port))
            self.run(self._open_proxy("fraud", "127.0.0.1", fraud_port))
            fraud_via = self.proxies["fraud"].port
            if self.redis_port is not None:
                self.run(self._open_proxy("redis", "127.0.0.1", self.redis_port))
                redis_via = self.proxies["redis"].port
            pg_proxy = self.proxies["postgresql"]
            self.database_url = self.direct_database_url.replace(
                f":{self.pg.port}/", f":{pg_proxy.port}/"
            )
        self._start_services(fraud_port, fraud_via, redis_via)

    def _start_cluster(self) -> None:
        """``start`` on a Patroni cluster: a proxy in front of each member (when proxies are
        on), the services writing through the multi-host URL over them and reading from each
        member; the checker's URL straight to the members."""
        cluster = self.db_cluster
        assert cluster is not None
        cluster.start(timeout=max(self.options.ready_timeout_s, 120.0))
        self.direct_database_url = cluster.writer_url()
        upgrade(self.direct_database_url)
        if self.options.redis and shutil.which("redis-server"):
            self._start_redis()
        fraud_port = free_port()
        fraud_via, redis_via = fraud_port, self.redis_port
        via: dict[str, int] | None = None
        if self.options.proxies:
            for member, port in cluster.member_ports().items():
                self.run(self._open_proxy(f"postgresql-{member}", "127.0.0.1", port))
            self.run(self._open_proxy("fraud", "127.0.0.1", fraud_port))
            fraud_via = self.proxies["fraud"].port
            if self.redis_port is not None:
                self.run(self._open_proxy("redis", "127.0.0.1", self.redis_port))
                redis_via = self.proxies["redis"].port
            via = self.member_proxy_ports()
        self.database_url = cluster.writer_url(via)
        self.database_read_urls = cluster.member_urls(via)
        self._start_services(fraud_port, fraud_via, redis_via)

    def _start_services(self, fraud_port: int, fraud_via: int, redis_via: int | None) -> None:
        api_port, notification_port = free_port(), free_port()
        self.api_url = f"http://127.0.0.1:{api_port}"
        env = {
            "STEADYPAY_DATABASE_URL": self.database_url,
            "STEADYPAY_ADMIN_KEY": self.admin_key,
            "STEADYPAY_INTERNAL_KEYS": json.dumps([self.internal_key]),
            "STEADYPAY_FRAUD_URL": f"http://127.0.0.1:{fraud_via}",
            "STEADYPAY_NOTIFICATION_URL": f"http://127.0.0.1:{notification_port}",
            "STEADYPAY_LOG_JSON": "true",
            "STEADYPAY_DB_CONNECT_TIMEOUT_S": "2",
            "STEADYPAY_DB_ACQUIRE_TIMEOUT_S": "3",
            # The relay's breaker probes the notification service again 5 s after it opened
            # (default 60 s), so that delivery visibly resumes within an experiment.
            "STEADYPAY_DEPENDENCIES__NOTIFICATIONS__RESET_TIMEOUT_S": "5",
        }
        if redis_via is not None:
            env["STEADYPAY_REDIS_URL"] = f"redis://127.0.0.1:{redis_via}/0"
        api_env = env
        if self.db_cluster is not None:
            env["STEADYPAY_DATABASE_READ_URLS"] = json.dumps(self.database_read_urls)
            # the API's workers share their metrics (the router's decisions, summed)
            metrics = self.data_dir / "metrics" / "api"
            shutil.rmtree(metrics, ignore_errors=True)
            metrics.mkdir(parents=True)
            api_env = env | {"PROMETHEUS_MULTIPROC_DIR": str(metrics)}
        me = [sys.executable, "-m", "steadypay"]
        host = ["--host", "127.0.0.1"]
        specs = {
            "fraud": ([*me, "fraud-service", *host, "--port", str(fraud_port)], fraud_port),
            "notifications": (
                [*me, "notification-service", *host, "--port", str(notification_port)],
                notification_port,
            ),
            "api": (
                [
                    *me,
                    "api",
                    *host,
                    "--port",
                    str(api_port),
                    "--workers",
                    str(self.options.api_workers),
                ],
                api_port,
            ),
            "relay": ([*me, "outbox-relay"], None),
        }
        for name, (argv, port) in specs.items():
            self.services[name] = Service(name, argv, api_env if name == "api" else env, port)
            self._spawn(self.services[name])
        self.wait_ready(self.options.ready_timeout_s)

    def stop(self) -> None:
        for service in reversed(list(self.services.values())):
            self._terminate(service)
        with contextlib.suppress(Exception):
            self.run(self._close_proxies(), timeout=10)
        if self.db_cluster is not None:
            with contextlib.suppress(Exception):
                self.db_cluster.stop(timeout=60)
        else:
            with contextlib.suppress(Exception):
                self.pg.stop("fast", timeout=30)
        if self._redis is not None:
            self._redis.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._redis.wait(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> ChaosEnvironment:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def wait_ready(self, within_s: float) -> None:
        """Until the API, fraud and notification services answer ``/health/ready`` 200."""
        deadline = time.monotonic() + within_s
        urls = [self.api_url] + [
            f"http://127.0.0.1:{s.port}"
            for s in self.services.values()
            if s.port is not None and s.name != "api"
        ]
        for url in urls:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                        break
                for service in self.services.values():
                    code = service.process.poll() if service.process else None
                    if code is not None:
                        raise RuntimeError(
                            f"{service.name} exited with status {code}: "
                            f"{self.log_tail(service.name)}"
                        )
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{url} not ready in {within_s} s")
                time.sleep(0.2)

    def log_tail(self, name: str, size: int = 3000) -> str:
        path = self.data_dir / "logs" / f"{name}.log"
        return path.read_text(errors="replace")[-size:] if path.exists() else ""

    # --- processes ----------------------------------------------------------------------------
    def _spawn(self, service: Service) -> None:
        if service.log is None:
            service.log = (self.data_dir / "logs" / f"{service.name}.log").open("ab")
        service.process = subprocess.Popen(
            service.argv,
            env={**os.environ, **service.env},
            stdin=subprocess.DEVNULL,
            stdout=service.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _terminate(self, service: Service, grace_s: float = 10.0) -> None:
        process = service.process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGCONT)  # a paused group cannot stop
                process.terminate()
            try:
                process.wait(grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if service.log is not None and process is not None and process.poll() is not None:
            service.log.flush()

    def pid(self, name: str) -> int:
        process = self.services[name].process
        if process is None or process.poll() is not None:
            raise RuntimeError(f"{name} is not running")
        return process.pid

    def worker_pids(self, name: str) -> list[int]:
        """uvicorn's worker processes of a service, from /proc: its children started by
        multiprocessing's ``spawn_main`` (not the resource tracker, its other child)."""
        parent = self.pid(name)
        children = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    stat = (entry / "stat").read_text()
                    ppid = int(stat.rsplit(")", 1)[1].split()[1])
                    if ppid == parent and b"spawn_main" in (entry / "cmdline").read_bytes():
                        children.append(int(entry.name))
        return sorted(children)

    def signal(self, name: str, sig: signal.Signals, *, whole_group: bool = True) -> int:
        """Send ``sig`` to a service (its whole process group, workers included)."""
        pid = self.pid(name)
        if whole_group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
        log.warning("chaos_signal", service=name, signal=sig.name, pid=pid)
        return pid

    def connections(self, pid: int, port: int) -> int:
        """Established TCP connections to ``port`` that process ``pid`` holds (from /proc)."""
        inodes: set[str] = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with contextlib.suppress(OSError):
                for line in Path(table).read_text().splitlines()[1:]:
                    fields = line.split()
                    local_port = int(fields[1].rsplit(":", 1)[1], 16)
                    if local_port == port and fields[3] == "01":  # 01 = ESTABLISHED
                        inodes.add(fields[9])
        held = 0
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:[") and target[8:-1] in inodes:
                        held += 1
        return held

    def kill_worker(self, name: str = "api") -> int:
        """SIGKILL the worker holding the most client connections (the busiest one)."""
        workers = self.worker_pids(name)
        if not workers:
            raise RuntimeError(f"{name} has no worker processes")
        port = self.services[name].port or 0
        victim = max(workers, key=lambda pid: self.connections(pid, port))
        os.kill(victim, signal.SIGKILL)
        log.warning("chaos_signal", service=name, signal="SIGKILL", pid=victim, worker=True)
        return victim

    def is_running(self, name: str) -> bool:
        process = self.services[name].process
        return process is not None and process.poll() is None

    def restart(self, name: str) -> None:
        """Start a service again (after a kill), or resume it (after a pause)."""
        service = self.services[name]
        if service.process is not None and service.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(service.process.pid, signal.SIGCONT)
            return
        if service.process is not None:
            with contextlib.suppress(ProcessLookupError):  # orphaned workers of a killed parent
                os.killpg(service.process.pid, signal.SIGKILL)
        service.restarts += 1
        self._spawn(service)

    # --- PostgreSQL and Redis -----------------------------------------------------------------
    def kill_postgres(self) -> int:
        if self.db_cluster is not None:
            raise RuntimeError("a cluster: use kill_primary_postmaster or lose_primary_node")
        info = (self.pg.pgdata / "postmaster.pid").read_text().split()
        pid = int(info[0])
        os.kill(pid, signal.SIGKILL)
        log.warning("chaos_signal", service="postgresql", signal="SIGKILL", pid=pid)
        return pid

    def postgres_running(self) -> bool:
        return self.pg.is_running()

    def restart_postgres(self) -> None:
        self.pg.start()

    # --- the Patroni cluster (db_nodes=3) -----------------------------------------------------
    def cluster(self) -> ClusterDatabase:
        if self.db_cluster is None:
            raise RuntimeError("this environment has one database node (db_nodes=1)")
        return self.db_cluster

    def cluster_status(self) -> list[MemberStatus]:
        return self.cluster().status()

    def primary_name(self) -> str:
        return self.cluster().primary_name()

    def member_proxy_ports(self) -> dict[str, int]:
        """Each member's fault proxy port (member → port); empty without proxies."""
        return {
            member: self.proxies[f"postgresql-{member}"].port
            for member in self.cluster().member_ports()
            if f"postgresql-{member}" in self.proxies
        }

    def kill_primary_postmaster(self) -> tuple[str, int]:
        """SIGKILL the primary's postmaster (Patroni promotes a standby): (member, pid)."""
        return self.cluster().kill_primary_postmaster()

    def lose_primary_node(self) -> str:
        """SIGKILL the primary's Patroni and postmaster; :meth:`restart_member` brings the
        node back (as a replica, once another member is the primary)."""
        return self.cluster().lose_primary_node()

    def restart_member(self, member: str, timeout: float = 90.0) -> MemberStatus:
        return self.cluster().restart_member(member, timeout)

    def kill_replica(self) -> str:
        """SIGKILL a replica's Patroni and postmaster; :meth:`restore_cluster` restarts it."""
        return self.cluster().kill_replica()

    def partition_primary(self) -> str:
        """The primary's proxy drops all traffic, both ways, on open and new connections (a
        black hole, not a reset); the members still reach each other, so Patroni keeps it the
        primary: the services are cut off from it. The member's name."""
        member = self.primary_name()
        proxy = self.proxy(f"postgresql-{member}")

        async def cut() -> None:
            proxy.add("partition", Timeout(timeout_ms=0, direction="both"))

        self.run(cut())
        log.warning("chaos_partition", member=member)
        return member

    def heal_partition(self) -> None:
        """Traffic flows again through every member's proxy."""
        proxies = [p for n, p in self.proxies.items() if n.startswith("postgresql-")]

        async def heal() -> None:
            for proxy in proxies:
                proxy.remove("partition")

        self.run(heal())

    def lag_replica(self) -> str:
        """Pause replay on a replica (its startup process stopped: Patroni undoes
        ``pg_wal_replay_pause()`` within a second, see :mod:`steadypay.chaos.cluster`): it goes
        on receiving and acknowledging WAL, but what it serves falls behind. Its name."""
        return self.cluster().pause_replay()

    def unlag_replica(self) -> list[str]:
        return self.cluster().resume_replay()

    def restore_cluster(self, within_s: float = 120.0) -> list[str]:
        """Partitions healed, replay resumed, killed members started again; then until one
        primary and two streaming, synchronous replicas. What was done."""
        self.heal_partition()
        return self.cluster().restore(within_s)

    def _start_redis(self) -> None:
        self.redis_port = free_port()
        argv = ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no"]  # fmt: skip
        if os.geteuid() == 0:
            argv += ["--protected-mode", "no"]
        out = (self.data_dir / "logs" / "redis.log").open("ab")
        self._redis = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.redis_port), 0.5),
            ):
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    # --- proxies ------------------------------------------------------------------------------
    async def _open_proxy(self, name: str, host: str, port: int) -> None:
        proxy = FaultProxy(host, port)
        await proxy.start()
        self.proxies[name] = proxy

    async def _close_proxies(self) -> None:
        for proxy in self.proxies.values():
            await proxy.stop()

    def proxy(self, name: str) -> FaultProxy:
        if name not in self.proxies:
            raise KeyError(f"no proxy {name!r} (have: {sorted(self.proxies)})")
        return self.proxies[name]

    def describe(self) -> Mapping[str, object]:
        if self.db_cluster is not None:
            return {
                "api": self.api_url,
                "postgresql": self.db_cluster.member_ports(),
                "postgresql_proxies": self.member_proxy_ports(),
                "redis": self.redis_port,
                "services": {
                    n: s.process.pid if s.process else None for n, s in self.services.items()
                },
                "data_dir": str(self.data_dir),
            }
        return {
            "api": self.api_url,
            "postgresql": f"127.0.0.1:{self.pg.port}",
            "postgresql_proxy": self.proxies["postgresql"].port if self.options.proxies else None,
            "redis": self.redis_port,
            "services": {n: s.process.pid if s.process else None for n, s in self.services.items()},
            "data_dir": str(self.data_dir),
        }
