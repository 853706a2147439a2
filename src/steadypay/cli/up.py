"""`steadypay up`: the database, migrations, then every service as a supervised process.

Children (each also runnable alone with its own command):
  fraud-service         POST /check-fraud            --fraud-port (8001)
  notification-service  events -> webhooks           --notification-port (8002)
  api                   the payment API + its jobs   --port (8000)
  outbox-relay          outbox -> notification service
Ctrl-C stops them all, then the embedded database.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import uvicorn
from rich.console import Console

from steadypay import __version__
from steadypay.cli.database import (
    admin_key_path,
    database,
    exclusive,
    load_or_create_admin_key,
)
from steadypay.cli.supervisor import ChildSpec, Supervisor
from steadypay.config import Settings
from steadypay.db.migrate import upgrade

SERVICES = ("fraud", "notifications", "api", "relay")


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
) -> None:
    console = Console(stderr=True)
    data_dir = data_dir.absolute()
    with exclusive(data_dir), database(settings, data_dir) as target:
        if settings.admin_key is not None:
            admin_key = settings.admin_key.get_secret_value()
            key_note = "from STEADYPAY_ADMIN_KEY"
        else:
            admin_key = load_or_create_admin_key(data_dir)
            key_note = f"in {admin_key_path(data_dir)} (mode 0600)"
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
        me = [sys.executable, "-m", "steadypay"]

        def with_metrics(service: str) -> dict[str, str]:
            """Each service's workers share one fresh prometheus_client multiprocess dir."""
            directory = data_dir / "metrics" / service
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir(parents=True)
            return env | {"PROMETHEUS_MULTIPROC_DIR": str(directory)}

        every = {
            "fraud": ChildSpec("fraud-service", [*me, "fraud-service", "--host", host,
                                                 "--port", str(fraud_port)], with_metrics("fraud")),
            "notifications": ChildSpec("notifications", [*me, "notification-service", "--host",
                                                         host, "--port", str(notification_port)],
                                       with_metrics("notifications")),
            "api": ChildSpec("api", [*me, "api", "--host", host, "--port", str(port),
                                     "--workers", str(workers)], with_metrics("api")),
            "relay": ChildSpec("outbox-relay", [*me, "outbox-relay"], env),
        }  # fmt: skip
        base = f"http://{host}:{port}"
        console.print(
            f"  API        {base}\n"
            f"  Docs       {base}/docs   (OpenAPI: {base}/openapi.json)\n"
            f"  Health     {base}/health/ready\n"
            f"  Fraud      {fraud_url}   Notifications  {notification_url}\n"
            f"  Database   {target.describe()}\n"
            f"  Admin key  {key_note}\n"
            f"  Workers    {workers}\n"
            "Press Ctrl-C to stop everything (the embedded database too)."
        )
        supervisor = Supervisor([every[s] for s in SERVICES if s in services], say=console.print)
        supervisor.run()
    console.print("steadypay stopped.")


def run_api(settings: Settings, *, host: str, port: int, workers: int) -> None:
    """The payment API alone (needs STEADYPAY_DATABASE_URL and STEADYPAY_ADMIN_KEY)."""
    settings.require_database_url()
    if settings.admin_key is None:
        raise SystemExit("STEADYPAY_ADMIN_KEY is required to run the API alone")
    os.environ.setdefault("STEADYPAY_ADMIN_KEY", settings.admin_key.get_secret_value())
    uvicorn.run(
        "steadypay.api.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level,
        access_log=False,
        timeout_graceful_shutdown=10,
    )
