"""`steadypay up`: database, migrations, then the API until Ctrl-C; then everything stops."""

from __future__ import annotations

import os
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
from steadypay.config import Settings
from steadypay.db.migrate import upgrade


def run_up(settings: Settings, *, host: str, port: int, workers: int, data_dir: Path) -> None:
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
        # Worker processes build their own Settings from the environment: hand them the
        # database and key chosen here (the CLI is the composition edge for processes).
        os.environ["STEADYPAY_DATABASE_URL"] = target.url
        os.environ["STEADYPAY_ADMIN_KEY"] = admin_key
        base = f"http://{host}:{port}"
        console.print(
            f"  API        {base}\n"
            f"  Docs       {base}/docs   (OpenAPI: {base}/openapi.json)\n"
            f"  Health     {base}/health/ready\n"
            f"  Database   {target.describe()}\n"
            f"  Admin key  {key_note}\n"
            f"  Workers    {workers}\n"
            "Press Ctrl-C to stop (the embedded database stops too)."
        )
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
    console.print("steadypay stopped.")
