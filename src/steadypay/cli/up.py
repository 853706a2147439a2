"""`steadypay up`: the database, migrations, then every service as a supervised process.

Children (each also runnable alone with its own command):
  fraud-service         POST /check-fraud            --fraud-port (8001)
  notification-service  events -> webhooks           --notification-port (8002)
  api                   the payment API + its jobs   --port (8000)
  outbox-relay          outbox -> notification service
  monitor               health rounds, canary payment, failover decision (docs/monitor.md)
Ctrl-C stops them all, then the embedded database. With ``--db-nodes 3`` (to 5) the database
is a synchronous PostgreSQL cluster under Patroni in ``<data-dir>/cluster``
(:mod:`steadypay.cli.ha`): the services write through a multi-host URL that finds the primary
and read from every member (STEADYPAY_DATABASE_READ_URLS); a watchdog restarts a member whose
Patroni died; Ctrl-C stops the members after the services.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import uvicorn
from rich.console import Console

from steadypay import __version__
from steadypay.bootstrap import configure_logging
from steadypay.cli.database import (
    Target,
    admin_key_path,
    database,
    exclusive,
    load_or_create_admin_key,
)
from steadypay.cli.supervisor import ChildSpec, Supervisor
from steadypay.config import Settings
from steadypay.db.embedded import EmbeddedPostgres, EmbeddedPostgresError
from steadypay.db.migrate import upgrade
from steadypay.resilience.retry import exponential_s

SERVICES = ("fraud", "notifications", "api", "relay", "monitor", "backups")


def run_up(
    settings: Settings,
    *,
    host: str,
    port: int,
    workers: int,
    data_dir: Path,
    fraud_port: int = 8001,
    notification_port: int = 8002,
    services: tuple[str, ...] = SERVICES,
    db_nodes: int = 1,
) -> None:
    console = Console(stderr=True)
    data_dir = data_dir.absolute()
    with exclusive(data_dir), _database(settings, data_dir, db_nodes, console) as target:
        if settings.admin_key is not None:
            admin_key = settings.admin_key.get_secret_value()
            key_note = "from STEADYPAY_ADMIN_KEY"
        else:
            admin_key = load_or_create_admin_key(data_dir)
            key_note = f"in {admin_key_path(data_dir)} (mode 0600)"
        # Every child derives the same internal service key from STEADYPAY_ADMIN_KEY unless
        # STEADYPAY_INTERNAL_KEYS is set (children inherit this environment).
        service_note = (
            "internal keys from STEADYPAY_INTERNAL_KEYS"
            if settings.internal_keys
            else "internal key derived from the admin key (STEADYPAY_INTERNAL_KEYS unset)"
        )
        console.print(f"[bold]steadypay {__version__}[/] applying migrations…")
        upgrade(target.url)
        fraud_url = f"http://{host}:{fraud_port}"
        notification_url = f"http://{host}:{notification_port}"
        # Children build their own Settings from the environment: hand them what was chosen
        # here (the CLI is the composition edge for processes).
        env = {
            "STEADYPAY_DATABASE_URL": target.url,
            "STEADYPAY_ADMIN_KEY": admin_key,
            "STEADYPAY_FRAUD_URL": fraud_url,
            "STEADYPAY_NOTIFICATION_URL": notification_url,
        }
        members: list[str] = []
        if target.cluster is not None:
            from steadypay.cli.ha import member_lines, read_urls, rest_urls

            env["STEADYPAY_DATABASE_READ_URLS"] = read_urls(target.cluster)
            env["STEADYPAY_MONITOR_PATRONI_URLS"] = rest_urls(target.cluster)
            members = member_lines(target.cluster.status(), target.cluster.layout.host)
        me = [sys.executable, "-m", "steadypay"]

        def with_metrics(service: str) -> dict[str, str]:
            """Each service's workers share one fresh prometheus_client multiprocess dir."""
            directory = data_dir / "metrics" / service
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir(parents=True, mode=0o700)  # private: every metric of the service
            return env | {"PROMETHEUS_MULTIPROC_DIR": str(directory)}

        every = {
            "fraud": ChildSpec("fraud-service", [*me, "fraud-service", "--host", host,
                                                 "--port", str(fraud_port)], with_metrics("fraud")),
            "notifications": ChildSpec("notifications", [*me, "notification-service", "--host",
                                                         host, "--port", str(notification_port)],
                                       with_metrics("notifications")),
            "api": ChildSpec("api", [*me, "api", "--host", host, "--port", str(port),
                                     "--workers", str(workers)], with_metrics("api")),
            # The relay serves no /metrics: its counters join the API's (same directory).
            "relay": ChildSpec("outbox-relay", [*me, "outbox-relay"], env | {
                "PROMETHEUS_MULTIPROC_DIR": str(data_dir / "metrics" / "api")}),
        }  # fmt: skip
        base = f"http://{host}:{port}"
        # The monitor (started last, stopped first) checks the API served here; its metrics
        # join the API's /metrics like the relay's.
        every["monitor"] = ChildSpec("monitor", [*me, "monitor", "--api-url", base], env | {
            "PROMETHEUS_MULTIPROC_DIR": str(data_dir / "metrics" / "api")})  # fmt: skip
        # With backups on: a first base backup now, then on schedule, each verified by a
        # restore and copied to the DR bucket (docs/dr.md). Needs the database of data_dir.
        local = target.embedded is not None or target.cluster is not None
        backups = settings.backup_enabled and local
        if backups:
            every["backups"] = ChildSpec("backups", [*me, "backup", "agent", "--data-dir",
                                                     str(data_dir)], env)  # fmt: skip
        console.print(
            f"  API        {base}\n"
            f"  Docs       {base}/docs   (OpenAPI: {base}/openapi.json)\n"
            f"  Health     {base}/health/ready\n"
            f"  Fraud      {fraud_url}   Notifications  {notification_url}\n"
            f"  Database   {target.describe()}\n"
            + "".join(f"{line}\n" for line in members)
            + f"  Admin key  {key_note}\n"
            f"  Services   {service_note}\n"
            f"  Workers    {workers}\n"
            "Press Ctrl-C to stop everything (the "
            + ("database cluster" if target.cluster else "embedded database")
            + " too)."
        )
        watchdogs: list[Callable[[], str | None]] = []
        if target.embedded is not None:
            target.embedded.pin_port()
            watchdogs.append(PostgresWatchdog(target.embedded))
        if target.cluster is not None:
            from steadypay.cli.ha import ClusterWatchdog

            watchdogs.append(ClusterWatchdog(target.cluster))
        supervisor = Supervisor(
            [every[s] for s in SERVICES if s in services and s in every],
            say=console.print,
            pid_dir=data_dir / "run",
            watchdogs=watchdogs,
        )
        supervisor.run()
    console.print("steadypay stopped.")


def _database(
    settings: Settings, data_dir: Path, db_nodes: int, console: Console
) -> AbstractContextManager[Target]:
    """One embedded node (or STEADYPAY_DATABASE_URL), or the Patroni cluster of ``db_nodes``
    members in ``<data_dir>/cluster``, started here and stopped after the services."""
    if db_nodes == 1:
        return database(settings, data_dir, prefer_cluster=False)
    from steadypay.cli.ha import started_cluster

    return started_cluster(settings, data_dir, db_nodes, console)


class PostgresWatchdog:
    """Restarts the embedded PostgreSQL, on the same port, if it stops under `up` (a crash, a
    kill, the OOM killer). Each failed restart waits longer before the next (1 s doubling to
    30 s), so a broken cluster is not hammered."""

    def __init__(self, cluster: EmbeddedPostgres, clock: Callable[[], float] = time.monotonic):
        self._cluster = cluster
        self._clock = clock
        self._next_try = 0.0
        self._failures = 0

    def __call__(self) -> str | None:
        if self._clock() < self._next_try or self._cluster.is_running():
            return None
        try:
            self._cluster.start(timeout=30)
        except EmbeddedPostgresError as exc:
            self._failures += 1
            delay = exponential_s(self._failures - 1, base_s=1.0, cap_s=30.0)
            self._next_try = self._clock() + delay
            return f"postgresql     stopped; restart failed, next try in {delay:.0f} s: {exc}"
        self._failures = 0
        return f"postgresql     stopped; restarted on port {self._cluster.port}"


def run_api(settings: Settings, *, host: str, port: int, workers: int) -> None:
    """The payment API alone (needs STEADYPAY_DATABASE_URL and STEADYPAY_ADMIN_KEY)."""
    settings.require_database_url()
    if settings.admin_key is None:
        raise SystemExit("STEADYPAY_ADMIN_KEY is required to run the API alone")
    os.environ.setdefault("STEADYPAY_ADMIN_KEY", settings.admin_key.get_secret_value())
    configure_logging(settings, "api")  # the parent's lines; each worker configures its own
    uvicorn.run(
        "steadypay.bootstrap.api:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level,
        log_config=None,  # ours (configure_logging): JSON lines, redaction
        access_log=False,
        server_header=False,  # no 'Server: uvicorn' (docs/security.md)
        timeout_graceful_shutdown=10,
    )
